"""The Gradio app (installed as `anno_mlx.ui`), built on the NER pipeline and render.py."""
