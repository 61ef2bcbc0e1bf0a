#!/bin/sh
# Drop the distribution's default site and start nginx with ours.
set -e
rm -f /etc/nginx/sites-enabled/default
systemctl enable nginx
systemctl restart nginx
