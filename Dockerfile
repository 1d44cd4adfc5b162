# The grading image: the autograder, the course (solutions root-only) and the
# assets, on a torch that runs on an NVIDIA GPU. The PyPI torch wheels for
# Linux x86_64 carry CUDA, so the base needs no CUDA; the host needs the NVIDIA
# container runtime (`docker run --gpus all`). README: Docker.
#
#   docker build -t autograder .                        # real assets, from the network
#   docker build --build-arg ASSETS=synth \
#       --build-arg BASE=autograder-base:bookworm --build-arg PIP_NO_INDEX=1 \
#       --network none -t autograder .                  # offline: scripts/docker-image.sh
#
# Build arguments:
#   BASE          a Debian (bookworm) image with Python 3.11 and its venv module
#   ASSETS        real (autograder assets fetch) or synth (generated stand-ins)
#   WHEELS        a folder of the build context with wheels pip may use (docker/wheels)
#   PIP_NO_INDEX  1: install from WHEELS alone, for a build with no network
ARG BASE=python:3.11-slim-bookworm

# Stage 1: the dependency list alone, so that an edit elsewhere in
# pyproject.toml does not reinstall torch (a COPY --from is cached by content).
FROM ${BASE} AS requirements
COPY pyproject.toml /src/
# The engine's dependencies and the stand-in generator's (extra `standins`, for ASSETS=synth).
RUN python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['standins']))" > /requirements.txt

# Stage 2: the virtual environment. Its wheels never reach the final image.
FROM ${BASE} AS build
ARG WHEELS=docker/wheels
ARG PIP_NO_INDEX=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_FIND_LINKS=/wheels \
    PIP_NO_INDEX=${PIP_NO_INDEX}
COPY ${WHEELS}/ /wheels/
COPY constraints.txt /src/
COPY --from=requirements /requirements.txt /src/
RUN python3 -m venv /opt/autograder/venv \
 && /opt/autograder/venv/bin/pip install --no-cache-dir -c /src/constraints.txt -r /src/requirements.txt
COPY pyproject.toml README.md /src/
COPY autograder /src/autograder
COPY assignments /src/assignments
RUN /opt/autograder/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist /src

# Stage 3: what grades.
FROM ${BASE}
ARG ASSETS=real
ENV PATH=/opt/autograder/venv/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTOGRADER_IN_CONTAINER=1 \
    AUTOGRADER_ASSETS=/opt/autograder/assets \
    HOME=/run/grader \
    TMPDIR=/run/grader
COPY --from=build /opt/autograder/venv /opt/autograder/venv
COPY --from=build /dist /opt/autograder/dist
RUN pip install --no-cache-dir --no-index --no-deps /opt/autograder/dist/*.whl
# The course: the public part readable, solutions (reference, hidden checks) root-only.
COPY assignments /opt/autograder/course/assignments
COPY solutions /opt/autograder/course/solutions
# /submission (the notebook, mounted read-only), /opt/autograder/instructor (a
# mounted course) and /run/grader (the grader's HOME and TMPDIR) are root-only,
# so student code, which runs as a fresh unprivileged uid per submission (see
# autograder/isolation/entry.py), cannot enter them; /work is its working folder.
RUN chmod -R go-rwx /opt/autograder/course/solutions \
 && mkdir -m 0700 /submission /opt/autograder/instructor /run/grader \
 && mkdir -m 0755 /work /kaggle
# The assets (weights and datasets): public/ readable, hidden/ root-only.
RUN case "${ASSETS}" in real) action=fetch ;; synth) action=synth ;; \
        *) echo "ASSETS must be real or synth, not ${ASSETS}" >&2; exit 1 ;; esac \
 && autograder --course /opt/autograder/course assets "${action}" \
 && if [ -d "${AUTOGRADER_ASSETS}/hidden" ]; then chmod -R go-rwx "${AUTOGRADER_ASSETS}/hidden"; fi \
 && autograder --course /opt/autograder/course assets status
ENTRYPOINT ["autograder", "--course", "/opt/autograder/course"]
CMD ["--help"]
