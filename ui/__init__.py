"""The Gradio app (installed as `anno_mlx.ui`); built on the NER pipeline, see the UI issue."""
