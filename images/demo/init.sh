#!/bin/sh
# Kaisar demo container: an HTTP server on port 8080 and an SSH server on port 22 that lets
# root in with the key in $SSH_PUBLIC_KEY (password logins are off).
mkdir -p /root/.ssh /etc/dropbear /www /tmp
chmod 700 /root /root/.ssh
if [ -n "$SSH_PUBLIC_KEY" ]; then
  printf '%s\n' "$SSH_PUBLIC_KEY" > /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
echo "hello from a Kaisar container (lease ${KAISAR_LEASE:-none})" > /www/index.html
echo "kaisar demo: ssh on 22, http on 8080"
/usr/sbin/dropbear -R -E -s -p 22
exec /bin/busybox httpd -f -v -p 8080 -h /www
