# mi_repr_tf on the official TensorFlow GPU image of the pinned TensorFlow (setup.cfg), to run
# sweeps on a GPU machine: see launch/docker_sweep.sh.
#
#   docker build -t mi_repr_tf .
#   launch/docker_sweep.sh DATA_DIR RUNS_DIR --sweep=critic_study [sweep flags]
#
# The base image brings Python, TensorFlow 2.21.0 and its CUDA libraries; pip adds the rest of
# setup.cfg (keras, TFP, tfds, gin, scikit-learn, ...) and the `ray` extra for multi-machine
# sweeps. tests/test_docker.py checks that this tag matches the tensorflow pin.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    MPLBACKEND=Agg \
    TFDS_DATA_DIR=/data/tensorflow_datasets

WORKDIR /opt/mi_repr_tf

# Dependencies first (a layer that survives code edits), then the code. The sweep tool finds
# the gin files next to launch/, so the repository layout is kept.
COPY setup.cfg pyproject.toml README.md ./
COPY mi_repr_tf/__init__.py mi_repr_tf/__init__.py
RUN python3 -m pip install ".[ray]"
COPY mi_repr_tf mi_repr_tf
COPY gin gin
COPY launch launch
RUN python3 -m pip install --no-deps -e . \
    && python3 -c "import mi_repr_tf.train, mi_repr_tf.report, launch.sweep"

# /data: datasets (mounted read-only); /runs: sweep folders (mounted read-write).
VOLUME ["/data", "/runs"]
ENTRYPOINT ["python3", "-m", "launch.sweep"]
CMD ["--help"]
