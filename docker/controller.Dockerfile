FROM python:3.11-slim-bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      espeak-ng sox build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch \
 && CMAKE_ARGS=-DGGML_NATIVE=OFF pip install --no-cache-dir -e .
ENV SMARTPBX_DATA_DIR=/data SMARTPBX_ASTERISK_CONFIG=/app/asterisk-config
CMD ["smartpbx", "serve"]
