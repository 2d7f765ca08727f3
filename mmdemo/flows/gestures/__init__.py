"""Gestures to text: hand landmarks (MediaPipe, through the ModelManager) -> static gestures and
fingerspelled letters (a small MLP trained on a kinematic hand model and on landmarks of
rendered hand emoji), moving gestures (DTW over a sliding window), a smoothed transcript;
gestures taught from a few examples.

``service.GestureService`` is the entry point; nothing here imports gradio.
"""
