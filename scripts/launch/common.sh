# scripts/launch/common.sh — what the Slurm and the hosts launchers share (sourced, not run).
#
# fedvlm_tls_args ROLE: the --cert/--key/--ca flags from $FEDVLM_CERTS (a directory every host
# sees): ca.pem, and ROLE.pem/ROLE.key — or HOSTNAME.pem/HOSTNAME.key when this host has its own.
# Prints nothing when FEDVLM_CERTS is unset.
fedvlm_tls_args() {
  local role=$1 dir=${FEDVLM_CERTS:-}
  [ -n "$dir" ] || return 0
  local who=$role
  [ "$role" = node ] && [ -f "$dir/$(hostname -s).pem" ] && who=$(hostname -s)
  for f in ca.pem "$who.pem" "$who.key"; do
    [ -r "$dir/$f" ] || { echo "fedvlm launch: FEDVLM_CERTS=$dir has no readable $f" >&2; return 1; }
  done
  echo "--cert $dir/$who.pem --key $dir/$who.key --ca $dir/ca.pem"
}

# fedvlm_listen_args SINGLE_HOST: where the server listens. One host and no certificates: the
# loopback, plain TCP. Otherwise every interface, which needs certificates (mutual TLS) or
# FEDVLM_INSECURE=1 (plain TCP: anyone who reaches the port may join).
fedvlm_listen_args() {
  local single=$1 port=${FEDVLM_PORT:-4242}
  if [ "$single" = 1 ] && [ -z "${FEDVLM_CERTS:-}" ]; then echo "--listen 127.0.0.1:$port"; return; fi
  if [ -z "${FEDVLM_CERTS:-}" ] && [ "${FEDVLM_INSECURE:-0}" != 1 ]; then
    echo "fedvlm launch: nodes on several hosts need FEDVLM_CERTS (mutual TLS, README) or FEDVLM_INSECURE=1" >&2
    return 1
  fi
  if [ -n "${FEDVLM_CERTS:-}" ]; then echo "--listen 0.0.0.0:$port"; else echo "--listen 0.0.0.0:$port --insecure"; fi
}
