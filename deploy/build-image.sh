#!/bin/sh
# Builds the container image from the repository's Dockerfile with the first
# container engine that works here (docker, podman, buildah; ENGINES=... to
# choose), then runs `failoverdns version` in it. Where none works it says
# why and exits 0 without building (REQUIRE_ENGINE=1 makes that an error).
#
#   deploy/build-image.sh                 # tag failoverdns:<version>
#   TAG=registry.example.com/failoverdns:1.4 deploy/build-image.sh
#   TAGS=cluster deploy/build-image.sh    # with cluster mode (README)
#
# podman and buildah build with --format docker: the OCI image format has
# no HEALTHCHECK, and the Dockerfile's would be dropped.
set -eu
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [ -z "${REVISION:-}" ]; then
  REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    REVISION="$REVISION-modified"
  fi
fi
TAG=${TAG:-failoverdns:$VERSION}

why=""
engine=""
for e in ${ENGINES:-docker podman buildah}; do
  if ! command -v "$e" >/dev/null 2>&1; then
    why="$why
  $e: not installed"
    continue
  fi
  case $e in
  docker)
    # The docker CLI alone is not an engine: it needs a daemon.
    if out=$(docker info 2>&1); then
      engine=docker
    else
      why="$why
  docker: installed, but 'docker info' fails: $(printf '%s\n' "$out" | grep -i -m1 -e error -e cannot || printf '%s\n' "$out" | tail -n 1)"
    fi
    ;;
  podman)
    if out=$(podman info 2>&1); then
      engine=podman
    else
      why="$why
  podman: installed, but 'podman info' fails: $(printf '%s\n' "$out" | tail -n 1)"
    fi
    ;;
  buildah)
    engine=buildah
    ;;
  *)
    why="$why
  $e: not a container engine this script knows (docker, podman, buildah)"
    ;;
  esac
  [ -n "$engine" ] && break
done

if [ -z "$engine" ]; then
  echo "build-image.sh: skipping the image build: no container engine works here:$why" >&2
  [ "${REQUIRE_ENGINE:-0}" = 1 ] && exit 1
  exit 0
fi

args="--build-arg VERSION=$VERSION --build-arg REVISION=$REVISION --build-arg TAGS=${TAGS:-} -t $TAG -f Dockerfile ."
echo "build-image.sh: building $TAG with $engine (version $VERSION, revision $REVISION)" >&2
case $engine in
docker) docker build $args ;;
podman) podman build --format docker $args ;;
buildah) buildah build --format docker $args ;;
esac

# The image starts and is the code just built.
case $engine in
buildah) run="podman run" ; command -v podman >/dev/null 2>&1 || run="" ;;
*) run="$engine run" ;;
esac
if [ -n "$run" ]; then
  $run --rm "$TAG" version
fi
