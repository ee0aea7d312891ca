# Breaks every rule check_dockerfiles.mjs enforces (the deploy test expects
# each to be reported).
FROM ubuntu:latest
FROM debian
RUN apt-get update && apt-get upgrade -y && apt-get install -y curl
ADD https://example.com/tool.tar.gz /opt/
EXPOSE 80/tcpx
USER root
