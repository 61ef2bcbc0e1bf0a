#!/bin/sh
set -e
printf 'Dev box provisioned by ctforge.\n' > /etc/motd
