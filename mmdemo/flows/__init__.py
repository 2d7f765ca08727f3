"""UI-free logic, one module per capability. Flows never import gradio."""
