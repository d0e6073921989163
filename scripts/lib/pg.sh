# A throwaway PostgreSQL cluster on loopback, for scripts/test.sh and the benchmarks (source it).
#   pg_find                 sets pg_bin to the newest /usr/lib/postgresql/*/bin; fails when there is none
#   pg_start [-c opt=v...]  initdb and start on a random port with those server options; sets pg_dir, pg_port, pg_url
#   pg_stop                 stops the cluster and deletes it (safe to call twice, and from an EXIT trap)
pg_bin=""
pg_dir=""
pg_port=""
pg_url=""

pg_find() {
  pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -x "$pg_bin/postgres" ]
}

run_pg() {
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  [ -n "$pg_bin" ] || pg_find || { echo "PostgreSQL binaries not found" >&2; return 1; }
  pg_dir="$(mktemp -d /tmp/nexus-pg.XXXXXX)"
  chmod 755 "$pg_dir"
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  # Below the kernel's ephemeral range (a port there can be the local end of an outgoing connection).
  local low
  low="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
  [ "$low" -gt 11000 ] 2>/dev/null || low=32768
  pg_port=$(( 10000 + RANDOM % (low - 10000) ))
  run_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync -E UTF8 >"$pg_dir/init.log" 2>&1 || { cat "$pg_dir/init.log" >&2; return 1; }
  run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 $*" start >/dev/null || { cat "$pg_dir/server.log" >&2; return 1; }
  pg_url="Host=127.0.0.1;Port=$pg_port;Username=postgres;Database=postgres"
}

pg_stop() {
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    run_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
  pg_dir=""
}
