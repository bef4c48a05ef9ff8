"""`python -m anno_mlx …`: one subcommand per job; user mistakes print one line, no traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Optional

from .decode import AGGREGATIONS
from .errors import AnnoError
from .render import FORMATS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m anno_mlx",
        description="Named-entity recognition with ModernBERT on MLX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    convert = sub.add_parser(
        "convert",
        help="convert a Hugging Face ModernBERT checkpoint (folder or hub id) to MLX",
        description="Convert a Hugging Face ModernBERT checkpoint (local folder or hub id) into an MLX model folder.",
    )
    convert.add_argument("src", help="Hugging Face model folder or hub id (e.g. answerdotai/ModernBERT-base)")
    convert.add_argument("-o", "--output", required=True, help="folder to write (must not exist unless --force)")
    convert.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="cast weights (default: as stored)")
    convert.add_argument("-q", "--quantize", action="store_true", help="quantize linear and embedding weights")
    convert.add_argument("--q-bits", type=int, default=4, choices=[4, 8], help="bits per quantized weight (default 4)")
    convert.add_argument("--q-group-size", type=int, default=64, help="weights per quantization group (default 64)")
    convert.add_argument("--force", action="store_true", help="replace an existing output folder")
    convert.add_argument(
        "--verify",
        action="store_true",
        help="reload the result and report its largest difference from the reference (transformers if installed)",
    )
    convert.set_defaults(run=run_convert)

    ner = sub.add_parser(
        "ner",
        help="find entities in text, files or standard input",
        description="Find named entities. Give TEXT, one or more --file, or - for standard input.",
    )
    ner.add_argument("text", nargs="?", help="text to analyse, or - to read standard input")
    ner.add_argument("-f", "--file", action="append", default=[], metavar="F", help="a UTF-8 text file (repeatable)")
    ner.add_argument("-m", "--model", help="converted model folder, Hugging Face folder or hub id")
    ner.add_argument("--format", default="table", choices=FORMATS, help="output format (default: table)")
    ner.add_argument("-o", "--output", help="write here instead of standard output")
    ner.add_argument("--labels", help="only these entity types, comma-separated (e.g. PER,ORG)")
    ner.add_argument("--min-score", type=float, default=0.0, help="drop entities scoring below this")
    ner.add_argument("--aggregation", default="first", choices=AGGREGATIONS, help="how subword labels combine (default: first)")
    ner.add_argument("--max-length", type=int, help="tokens per pass (default: the model's context)")
    ner.add_argument("--stride", type=int, help="tokens shared by neighbouring windows on long documents")
    ner.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    ner.add_argument("--encoding", default="utf-8", help="encoding of the input files (default utf-8)")
    ner.set_defaults(run=run_ner)

    ui = sub.add_parser(
        "ui",
        help="start the local web app",
        description="Start the web app on this computer (no share link; nothing leaves the machine).",
    )
    ui.add_argument("-m", "--model", help="model to select at start (converted folder, Hugging Face folder or hub id)")
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    ui.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    ui.set_defaults(run=run_ui)
    return parser


def run_convert(args: argparse.Namespace) -> None:
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


def run_ner(args: argparse.Namespace) -> None:
    from .ner import NER
    from .render import render_chunks

    documents = read_inputs(args)
    if args.model is None:
        raise AnnoError("--model is required: no default model is embedded yet; give a converted folder or a hub id")
    ner = NER.from_pretrained(
        args.model,
        max_length=args.max_length,
        stride=args.stride,
        batch_size=args.batch_size,
        aggregation=args.aggregation,
        labels=args.labels,
        min_score=args.min_score,
    )
    # The bar shows itself when there is more than one window or file to run.
    results = ner.batch([text for _, text in documents], progress=True)
    chunks = render_chunks([(source, text, entities) for (source, text), entities in zip(documents, results)], args.format)
    if args.output:
        write_text(Path(args.output), chunks)
    else:
        sys.stdout.writelines(chunks)


def run_ui(args: argparse.Namespace) -> None:
    from .ui.app import launch

    try:
        launch(args.model, host=args.host, port=args.port)
    except OSError as err:
        raise AnnoError(f"cannot serve on {args.host}:{args.port} ({err}); pass another --port or --host") from None


def read_inputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(source name, text) for TEXT, stdin and every --file, decoded strictly."""
    documents = []
    if args.text == "-":
        documents.append(("<stdin>", decode_bytes(sys.stdin.buffer.read(), "<stdin>", args.encoding)))
    elif args.text is not None:
        documents.append(("<text>", args.text))
    for name in args.file:
        path = Path(name)
        if not path.is_file():
            raise AnnoError(f"input file {name} does not exist" if not path.exists() else f"{name} is not a file")
        documents.append((name, decode_bytes(path.read_bytes(), name, args.encoding)))
    if not documents:
        raise AnnoError("no input: give TEXT, --file F, or - to read standard input")
    return documents


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


def write_text(path: Path, chunks: Iterable[str]) -> None:
    """Write next to the target, then rename, so a failure leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.writelines(chunks)
        tmp.replace(path)
    except OSError as err:
        raise AnnoError(f"cannot write {path}: {err.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except AnnoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
