"""`python -m anno_mlx …`: one subcommand per job; user mistakes print one line, no traceback."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .corpus import DOCUMENTS_PER_SHARD
from .decode import AGGREGATIONS
from .errors import AnnoError
from .ner import DEFAULT_AGGREGATION, DEFAULT_BATCH_SIZE
from .outputs import check_text_output, write_text_file
from .pool import DEFAULT_MAX_MODELS
from .render import FORMATS
from .runners import BACKENDS, DEVICES
from .tokenizer import unpaired_surrogate


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="engine: MLX or PyTorch (auto: MLX on Apple Silicon, PyTorch on CUDA or other CPUs when installed)",
    )
    parser.add_argument("--device", choices=DEVICES, help="device (default: the backend's best)")


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels",
        help="only these entity types, comma-separated (e.g. PER,ORG); for a zero-shot (GLiNER) model, "
        "the types to find (e.g. person,company,drug)",
    )
    parser.add_argument("--min-score", type=float, default=0.0, help="drop entities scoring below this")
    add_zero_shot_options(parser)


def add_zero_shot_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("zero-shot (GLiNER) models")
    group.add_argument(
        "--threshold", type=float, help="a span is an entity above this probability (default 0.5)"
    )
    group.add_argument(
        "--nested", action="store_true", default=None, help="allow entities inside other entities"
    )
    group.add_argument(
        "--multi-label", action="store_true", default=None, help="allow one span to carry several labels"
    )


def zero_shot_options(args: argparse.Namespace) -> dict:
    """The zero-shot flags given on the command line (None: not given)."""
    return {"threshold": args.threshold, "nested": args.nested, "multi_label": args.multi_label}


def add_server_options(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)"
    )
    parser.add_argument("--port", type=int, default=port, help=f"port (default {port})")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--aggregation",
        default=DEFAULT_AGGREGATION,
        choices=AGGREGATIONS,
        help=f"how subword labels combine (default: {DEFAULT_AGGREGATION})",
    )
    parser.add_argument("--max-length", type=int, help="tokens per pass (default: the model's context)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"windows per forward pass (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--one-type-per-name",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give a name the same type everywhere in a document (default: on; token-classification models)",
    )


def run_options(args: argparse.Namespace) -> dict:
    """The `NEROptions` that `add_run_options` flags choose (None: the model's default)."""
    return {
        "aggregation": args.aggregation,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "one_type_per_name": args.one_type_per_name,
    }


class OneLineParser(argparse.ArgumentParser):
    """Option mistakes as one line, like every other user mistake, with where to look."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m anno_mlx",
        description="Named-entity recognition with ModernBERT on MLX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    convert = sub.add_parser(
        "convert",
        help="convert a Hugging Face checkpoint (ModernBERT, BERT, RoBERTa, XLM-R, DistilBERT, DeBERTa-v2/v3) to MLX",
        description="Convert a Hugging Face checkpoint (local folder or hub id) of a supported family into an MLX model folder.",
    )
    convert.add_argument("src", help="Hugging Face model folder or hub id (e.g. answerdotai/ModernBERT-base)")
    convert.add_argument(
        "-o", "--output", required=True, help="folder to write (must not exist unless --force)"
    )
    convert.add_argument(
        "--dtype", choices=["float32", "float16", "bfloat16"], help="cast weights (default: as stored)"
    )
    convert.add_argument(
        "-q", "--quantize", action="store_true", help="quantize linear and embedding weights"
    )
    convert.add_argument(
        "--q-bits", type=int, default=4, choices=[4, 8], help="bits per quantized weight (default 4)"
    )
    convert.add_argument(
        "--q-group-size", type=int, default=64, help="weights per quantization group (default 64)"
    )
    convert.add_argument("--force", action="store_true", help="replace an existing output folder")
    convert.add_argument(
        "--verify",
        action="store_true",
        help="reload the result and report its largest difference from the reference (transformers if installed)",
    )
    convert.set_defaults(run=run_convert)

    avg = sub.add_parser(
        "average",
        help="average the weights of models fine-tuned from one start (a model soup)",
        description="Write the element-wise mean of the weights of two or more runs fine-tuned from one starting model (same family, sizes, labels and tokenizer) into one model folder.",
    )
    avg.add_argument("models", nargs="+", help="model folders (or hub ids) of the runs, two or more")
    avg.add_argument("-o", "--output", required=True, help="folder to write (must not exist unless --force)")
    avg.add_argument("--force", action="store_true", help="replace an existing output folder")
    avg.set_defaults(run=run_average)

    ner = sub.add_parser(
        "ner",
        help="find entities in text, files or standard input",
        description="Find named entities. Give TEXT, one or more --file, or - for standard input.",
    )
    ner.add_argument("text", nargs="?", help="text to analyse, a file to read, or - to read standard input")
    ner.add_argument(
        "-f", "--file", action="append", default=[], metavar="F", help="a UTF-8 text file (repeatable)"
    )
    ner.add_argument(
        "-m",
        "--model",
        help="converted model folder, Hugging Face folder or hub id (default: the built-in model)",
    )
    ner.add_argument(
        "--format", default="table", choices=list(FORMATS), help="output format (default: table)"
    )
    ner.add_argument("-o", "--output", help="write here instead of standard output")
    add_filter_options(ner)
    add_run_options(ner)
    ner.add_argument("--stride", type=int, help="tokens shared by neighbouring windows on long documents")
    ner.add_argument("--encoding", default="utf-8", help="encoding of the input files (default utf-8)")
    add_backend_options(ner)
    ner.set_defaults(run=run_ner)

    ui = sub.add_parser(
        "ui",
        help="start the local web app",
        description="Start the web app on this computer (no share link; nothing leaves the machine).",
    )
    ui.add_argument(
        "-m",
        "--model",
        help="model to select at start (converted folder, Hugging Face folder or hub id; default: the built-in model)",
    )
    add_server_options(ui, port=7860)
    ui.add_argument(
        "--max-size",
        type=float,
        default=20.0,
        metavar="MB",
        help="largest document, pasted or uploaded, in MB (default 20)",
    )
    ui.add_argument(
        "--max-models",
        type=int,
        default=DEFAULT_MAX_MODELS,
        metavar="N",
        help=f"models kept loaded at once; the least recently used is dropped (default {DEFAULT_MAX_MODELS})",
    )
    add_backend_options(ui)
    ui.set_defaults(run=run_ui)

    co = sub.add_parser(
        "corpus",
        help="entities of a whole corpus (folder, JSONL or Parquet) into Parquet/JSONL shards, resumable, optionally on Ray",
        description="One row per entity (doc_id, start, end, label, text, score) in shards with a manifest; see docs/corpus.md.",
    )
    co.add_argument(
        "input", help='a folder of .txt/.md files, a .jsonl file of {"id", "text"} lines, or a .parquet file'
    )
    co.add_argument(
        "-o",
        "--output",
        required=True,
        help="output folder (new or empty; with --resume, an interrupted run's)",
    )
    co.add_argument("-m", "--model", help="model folder or hub id (default: the built-in model)")
    co.add_argument(
        "--format", default="parquet", choices=["parquet", "jsonl"], help="shard format (default parquet)"
    )
    co.add_argument(
        "--text-column", default="text", help="Parquet: the column holding the text (default text)"
    )
    co.add_argument(
        "--id-column",
        default="id",
        help="Parquet: the column holding document ids (default id; else the row number)",
    )
    add_filter_options(co)
    add_run_options(co)
    co.add_argument(
        "--shard-size",
        type=int,
        default=DOCUMENTS_PER_SHARD,
        help=f"documents per shard (default {DOCUMENTS_PER_SHARD})",
    )
    co.add_argument("--resume", action="store_true", help="continue an interrupted run in OUTPUT")
    co.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray Data (a local Ray unless --address); needs anno-mlx[ray]",
    )
    co.add_argument("--address", help="Ray cluster address (e.g. ray://head:10001 or auto)")
    co.add_argument(
        "--num-actors",
        type=int,
        help="Ray: model copies running at once (default: the cluster's CPUs minus one)",
    )
    add_backend_options(co)
    co.set_defaults(run=run_corpus)

    sv = sub.add_parser(
        "serve",
        help="serve entities over HTTP (JSON API) with the web app on the same port",
        description="A local JSON API (POST /v1/ner, POST /v1/ner:stream, GET /v1/models, docs at /docs) and the web app at /.",
    )
    sv.add_argument(
        "-m",
        "--model",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model to serve: folder, hub id, or default for the built-in one (repeatable; the first is the default; default: the built-in model)",
    )
    add_server_options(sv, port=8000)
    sv.add_argument(
        "--api-key",
        default=os.environ.get("ANNO_MLX_API_KEY"),
        help="require this key (Authorization: Bearer KEY); default $ANNO_MLX_API_KEY",
    )
    sv.add_argument(
        "--queue",
        type=int,
        default=32,
        help="requests that may wait for the model before new ones get 503 (default 32)",
    )
    sv.add_argument(
        "--max-body",
        type=int,
        default=20 * 1024 * 1024,
        help="largest request body in bytes (default 20 MiB)",
    )
    sv.add_argument(
        "--max-chars",
        type=int,
        default=1_000_000,
        help="most characters of text per request or streamed document (default 1,000,000)",
    )
    sv.add_argument("--no-ui", action="store_true", help="serve the API only")
    add_backend_options(sv)
    sv.set_defaults(run=run_serve)

    ev = sub.add_parser(
        "eval",
        help="measure a model on labelled data (precision, recall, F1)",
        description="Entity-level precision, recall and F1 (strict, exact, partial, type) of a model on CoNLL or JSONL data.",
    )
    ev.add_argument("-m", "--model", help="model folder or hub id (default: the built-in model)")
    ev.add_argument(
        "--data", required=True, help="labelled data (CoNLL columns, or JSONL with character offsets)"
    )
    ev.add_argument("--format", choices=["conll", "jsonl"], help="data format (default: from the extension)")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.add_argument(
        "--map",
        metavar="MAP",
        help="score a model whose types differ from the data's: MODEL=DATA pairs (PERSON=PER,GPE=LOC) or a preset (conll)",
    )
    ev.add_argument(
        "--labels",
        help="for a zero-shot (GLiNER) model: the types to find, comma-separated (default: the data's)",
    )
    add_zero_shot_options(ev)
    add_run_options(ev)
    add_backend_options(ev)
    ev.set_defaults(run=run_eval)

    tr = sub.add_parser(
        "train",
        help="fine-tune (or train from scratch) a token-classification model (MLX or PyTorch)",
        description="Fine-tune a checkpoint of any supported family for NER on CoNLL or JSONL data, or train one from a fresh --config.",
    )
    start = tr.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "-m",
        "--model",
        help="converted or Hugging Face model folder (masked-LM or NER) of any supported family",
    )
    start.add_argument(
        "--config", help="JSON of model settings (hidden_size, num_hidden_layers, ...) for a fresh model"
    )
    tr.add_argument("--train", required=True, help="training data")
    tr.add_argument("--dev", help="development data, evaluated after each epoch; the best epoch is kept")
    tr.add_argument("--format", choices=["conll", "jsonl"], help="data format (default: from the extension)")
    tr.add_argument("-o", "--output", required=True, help="output model folder")
    tr.add_argument(
        "--tokenizer", help="tokenizer.json (default: the model's; for --config, one trained on the data)"
    )
    tr.add_argument("--labels", help="entity types, comma-separated (default: those in the training data)")
    tr.add_argument(
        "--map",
        metavar="MAP",
        help="data typed more coarsely than the model: MODEL=DATA pairs (GPE=LOC,LOC=LOC) or a preset (conll); see docs/training.md",
    )
    tr.add_argument("--dev-map", metavar="MAP", help="the --dev data's mapping alone (default: --map)")
    from .training.settings import TrainSettings

    defaults = TrainSettings()
    tr.add_argument(
        "--epochs",
        type=int,
        help="passes over the data (default: 3 to fine-tune, 10 for a fresh --config model)",
    )
    tr.add_argument("--batch-size", type=int, default=defaults.batch_size)
    tr.add_argument(
        "--lr",
        type=float,
        help="peak learning rate (default: 5e-5 to fine-tune, 1e-3 for a fresh --config model)",
    )
    tr.add_argument("--warmup", type=float, default=defaults.warmup, help="share of steps spent warming up")
    tr.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    tr.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm)
    tr.add_argument("--max-length", type=int, default=defaults.max_length, help="tokens per training row")
    tr.add_argument(
        "--vocab-size", type=int, default=defaults.vocab_size, help="for a tokenizer trained on the data"
    )
    tr.add_argument("--seed", type=int, default=defaults.seed)
    tr.add_argument(
        "--objective",
        default="ner",
        choices=["ner", "mlm"],
        help="ner: entity labels (default); mlm: masked tokens, to adapt an encoder to your text before NER training",
    )
    tr.add_argument(
        "--mask-rate",
        type=float,
        default=defaults.mask_rate,
        help="mlm: share of tokens hidden (default 0.3)",
    )
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run from OUTPUT.state/")
    tr.add_argument("--force", action="store_true", help="replace an existing output folder")
    add_backend_options(tr)
    tr.set_defaults(run=run_train)

    bench = sub.add_parser(
        "bench",
        help="compare our MLX and PyTorch paths with transformers (tokens/s, memory)",
        description="Throughput benchmark; see benchmarks/throughput.py and docs/benchmarks.md.",
        add_help=False,
    )
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(run=run_bench)
    return parser


def run_convert(args: argparse.Namespace) -> None:
    from .runners import prepare_mlx

    prepare_mlx()  # conversion computes with MLX (quantization, the check)
    from .convert import convert

    convert(
        args.src,
        args.output,
        dtype=args.dtype,
        quantize=args.quantize,
        q_bits=args.q_bits,
        q_group_size=args.q_group_size,
        force=args.force,
        verify=args.verify,
    )


def run_average(args: argparse.Namespace) -> None:
    from .runners import prepare_mlx

    prepare_mlx()
    from .convert import average

    average(args.models, args.output, force=args.force)


def run_ner(args: argparse.Namespace) -> None:
    from .ner import NER, check_score, label_set
    from .render import render_chunks

    label_set(args.labels)  # options and inputs are checked before the model loads
    check_score("min_score", args.min_score)
    documents = read_inputs(args)
    if args.output == "":
        raise AnnoError("-o needs a file name (leave -o out to print to standard output)")
    if args.output:  # before the model loads and runs: a bad target fails in a second, not after the run
        check_text_output(Path(args.output), [Path(name) for name in args.file], stdin=args.text == "-")
    ner = NER.from_pretrained(
        args.model,
        backend=args.backend,
        device=args.device,
        stride=args.stride,
        **run_options(args),
        labels=args.labels,
        min_score=args.min_score,
        **zero_shot_options(args),
    )
    # The bar shows itself when there is more than one window or file to run.
    results = ner.batch([text for _, text in documents], progress=True)
    chunks = render_chunks(
        [(source, text, entities) for (source, text), entities in zip(documents, results)], args.format
    )
    if args.output:
        write_text_file(Path(args.output), chunks)
    else:
        sys.stdout.writelines(chunks)


def run_ui(args: argparse.Namespace) -> None:
    from .ui.app import launch

    if not args.max_size > 0 or args.max_models < 1:  # `not >` also refuses nan
        raise AnnoError("--max-size must be a positive number of MB and --max-models at least 1")
    max_bytes = int(min(args.max_size, 2.0**40) * 2**20)
    try:
        launch(
            args.model,
            host=args.host,
            port=args.port,
            backend=args.backend,
            device=args.device,
            max_bytes=max(max_bytes, 1),
            max_models=args.max_models,
        )
    except OSError as err:
        raise AnnoError(
            f"cannot serve on {args.host}:{args.port} ({err}); pass another --port or --host"
        ) from None


def run_corpus(args: argparse.Namespace) -> None:
    from .ner import check_score, label_set

    label_set(args.labels)  # options are checked before Ray starts or the model loads
    check_score("min_score", args.min_score)
    model_name = args.model or "default"
    if args.ray:
        from .ray_corpus import run_ray

        if args.resume or args.format != "parquet":
            raise AnnoError(
                "--ray writes Parquet and starts afresh; drop --resume/--format jsonl, or run without --ray"
            )
        manifest = run_ray(
            args.input,
            args.output,
            model=args.model,
            model_name=model_name,
            backend=args.backend,
            device=args.device,
            text_column=args.text_column,
            id_column=args.id_column,
            labels=args.labels,
            min_score=args.min_score,
            **run_options(args),
            address=args.address,
            num_actors=args.num_actors,
            **zero_shot_options(args),
        )
    else:
        from .corpus import run_corpus as run
        from .ner import NER

        ner = NER.from_pretrained(
            args.model,
            backend=args.backend,
            device=args.device,
            **run_options(args),
            labels=args.labels,
            **zero_shot_options(args),
        )
        manifest = run(
            args.input,
            args.output,
            ner,
            model_name=model_name,
            fmt=args.format,
            text_column=args.text_column,
            id_column=args.id_column,
            labels=args.labels,
            min_score=args.min_score,
            resume=args.resume,
            documents_per_shard=args.shard_size,
        )
    from .corpus import skipped_documents

    rows = sum(shard.get("rows", 0) for shard in manifest["shards"])
    skipped = len(skipped_documents(manifest))
    counted = (
        f"{rows:,} entities in {len(manifest['shards'])} shards"
        if manifest["runner"] == "local"
        else f"{len(manifest['shards'])} Parquet files"
    )
    print(f"wrote {args.output}: {counted}; {skipped} documents skipped (listed in _manifest.json)")


def run_serve(args: argparse.Namespace) -> None:
    from .serve import serve

    try:
        serve(
            args.model,
            host=args.host,
            port=args.port,
            backend=args.backend,
            device=args.device,
            api_key=args.api_key,
            queue_size=args.queue,
            max_body=args.max_body,
            max_chars=args.max_chars,
            ui=not args.no_ui,
        )
    except OSError as err:
        raise AnnoError(
            f"cannot serve on {args.host}:{args.port} ({err}); pass another --port or --host"
        ) from None


def run_bench(args: argparse.Namespace) -> None:
    from .runners import TORCH_HINT, torch_available

    if not torch_available():
        raise AnnoError(f"the benchmark compares with transformers: {TORCH_HINT}")
    from .bench.throughput import main as bench_main

    bench_main([a for a in args.rest if a != "--"])


def run_eval(args: argparse.Namespace) -> None:
    import json

    from .datasets import read_examples
    from .labelmap import parse_optional
    from .metrics import format_report, score
    from .ner import NER
    from .zeroshot import ZeroShotNER

    label_map = parse_optional(args.map)
    if label_map is not None:
        label_map.to_data()  # one data type per model type, checked before the model runs
    examples = read_examples(args.data, args.format)
    ner = NER.from_pretrained(
        args.model,
        backend=args.backend,
        device=args.device,
        **run_options(args),
        **zero_shot_options(args),
    )
    if isinstance(ner, ZeroShotNER):  # the prompt: the labels asked for, else the data's own types
        data_types = sorted({label for e in examples for _, _, label in e.spans})
        ner.defaults = ner.options(labels=args.labels or data_types)
    elif args.labels:
        raise AnnoError("--labels in eval is for zero-shot models; this model's types are fixed (see --map)")
    report = score(ner, examples, label_map, progress=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(
            f"{len(examples)} examples from {args.data}, model {args.model}\n\n" + format_report(report)
        )


def run_train(args: argparse.Namespace) -> None:
    from .runners import choose

    choose(args.backend, args.device)  # the engine first: it decides which BLAS MLX gets
    from .train import TrainSettings, train

    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        max_grad_norm=args.max_grad_norm,
        max_length=args.max_length,
        seed=args.seed,
        vocab_size=args.vocab_size,
        mask_rate=args.mask_rate,
    )
    labels = [label.strip() for label in args.labels.split(",") if label.strip()] if args.labels else None
    from .labelmap import parse_optional

    summary = train(
        args.train,
        args.output,
        model=args.model,
        config=args.config,
        dev_file=args.dev,
        data_format=args.format,
        tokenizer_file=args.tokenizer,
        labels=labels,
        label_map=parse_optional(args.map),
        dev_map=parse_optional(args.dev_map),
        objective=args.objective,
        settings=settings,
        resume=args.resume,
        force=args.force,
        backend=args.backend,
        device=args.device,
    )
    best = summary["best"]
    figure = (
        f", dev F1 {best['f1']:.4f}"
        if "f1" in best
        else f", dev MLM loss {best['mlm_loss']:.4f}"
        if "mlm_loss" in best
        else ""
    )
    print(f"wrote {args.output} (epoch {best['epoch']}{figure})")


def read_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(source name, text) for TEXT, stdin and every --file, decoded strictly."""
    documents = []
    if args.text == "-":
        documents.append(("<stdin>", decode_bytes(read_stdin(), "<stdin>", args.encoding)))
    elif (
        args.text is not None
        and "\n" not in args.text
        and len(args.text) < 4096
        and Path(args.text).is_file()
    ):
        args.file.insert(0, args.text)  # `ner FILE` reads the file, as `ner --file FILE` does
    elif args.text is not None:
        documents.append(("<text>", argument_text(args.text)))
    for name in args.file:
        path = Path(name)
        shown = printable(name)
        if not path.is_file():
            raise AnnoError(
                f"input file {shown} does not exist" if not path.exists() else f"{shown} is not a file"
            )
        try:
            data = path.read_bytes()
        except OSError as err:
            raise AnnoError(f"cannot read {shown}: {err.strerror or err}") from None
        documents.append((shown, decode_bytes(data, shown, args.encoding)))
    if not documents:
        raise AnnoError("no input: give TEXT, --file F, or - to read standard input")
    return documents


def read_stdin() -> bytes:
    """All of standard input; a closed one (`<&-`: Python sets sys.stdin to None) or an
    unreadable one (a folder) is an error, not a traceback."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise AnnoError("standard input is closed; pipe text into `ner -`, or give TEXT or --file F")
    try:
        return stream.read()
    except OSError as err:
        raise AnnoError(f"cannot read standard input: {err.strerror or err}") from None


def argument_text(text: str) -> str:
    """TEXT as given on the command line; bytes that were not UTF-8 reach Python as lone
    surrogates (U+DC80-U+DCFF), which no text can hold."""
    bad = unpaired_surrogate(text)
    if bad is not None:
        code = ord(text[bad])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise AnnoError(
            f"TEXT is not valid UTF-8 ({what} at character {bad}); "
            f"put it in a file and pass --file F with --encoding, or set the terminal to UTF-8"
        )
    return text


def printable(name: str) -> str:
    """A file name as it can be printed and written: bytes that were not UTF-8 as \\udcXX."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


def decode_bytes(data: bytes, name: str, encoding: str) -> str:
    if b"\x00" in data[:8192] and encoding.lower().replace("-", "") in ("utf8", "ascii"):
        raise AnnoError(f"{name} looks like a binary file, not text; give a plain-text file")
    try:
        return data.decode(encoding)
    except LookupError:
        raise AnnoError(f"--encoding {encoding} is not an encoding Python knows") from None
    except UnicodeDecodeError as err:
        raise AnnoError(
            f"{name} is not valid {encoding} (byte 0x{data[err.start]:02x} at offset {err.start}); "
            f"pass --encoding (e.g. --encoding latin-1) or convert the file to UTF-8"
        ) from None
    except UnicodeError as err:  # a codec that fails without saying where
        raise AnnoError(f"{name} cannot be read as {encoding} ({err}); pass another --encoding") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT raises KeyboardInterrupt, so the same `finally:` clean-ups run."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into `Terminated` while the command runs (main thread only), then restore."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        argv = ["bench", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            args.run(args)
    except AnnoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `… | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
