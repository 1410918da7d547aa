#!/usr/bin/env bash
# Install Debian's clickhouse-server when missing and start a private server for the tests:
# 127.0.0.1 only, free ports, config, data and logs all under $CI_TMP/clickhouse. The system
# service is never started. Writes ONCALL_AI_TEST_CLICKHOUSE (and a user with a password, for
# the credential tests) into $CI_TMP/env.sh. .ci/stop-clickhouse.sh stops it again.
set -euo pipefail
: "${CI_TMP:?CI_TMP must be set (run through .ci/run)}"

CH_DIR="$CI_TMP/clickhouse"
mkdir -p "$CH_DIR"/{data,tmp,user_files,format_schemas,log}

server_bin() {
  command -v clickhouse-server 2>/dev/null || { [ -x /usr/sbin/clickhouse-server ] && echo /usr/sbin/clickhouse-server; } || true
}

if [ -z "$(server_bin)" ]; then
  echo "installing clickhouse-server from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages start their service from postinst unless policy-rc.d says no: say no for the
  # duration of the install (only if no policy is in place already), then restore.
  POLICY=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    made_policy=1
  fi
  restore_policy() { if [ "$made_policy" = 1 ]; then rm -f "$POLICY"; fi; }
  trap restore_policy EXIT
  apt-get update -o DPkg::Lock::Timeout=600 >&2
  apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 \
    clickhouse-server clickhouse-client >&2
  restore_policy
  trap - EXIT
  # If the package's service got started anyway (systemd as PID 1), stop and disable it.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now clickhouse-server.service >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/clickhouse-server ]; then
    /etc/init.d/clickhouse-server stop >/dev/null 2>&1 || true
    update-rc.d clickhouse-server disable >/dev/null 2>&1 || true
  fi
fi
SERVER=$(server_bin)
[ -n "$SERVER" ] || { echo "clickhouse-server not found after install" >&2; exit 1; }

# Free ports: let the kernel pick, then release them for the server (a tiny race we accept).
read -r HTTP_PORT TCP_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()
PY
)

PASSWORD="ci-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

cat > "$CH_DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$CH_DIR/log/clickhouse-server.log</log>
        <errorlog>$CH_DIR/log/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$HTTP_PORT</http_port>
    <tcp_port>$TCP_PORT</tcp_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>64</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>$CH_DIR/data/</path>
    <tmp_path>$CH_DIR/tmp/</tmp_path>
    <user_files_path>$CH_DIR/user_files/</user_files_path>
    <format_schema_path>$CH_DIR/format_schemas/</format_schema_path>
    <users_config>$CH_DIR/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML

cat > "$CH_DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <oncall>
            <password>$PASSWORD</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </oncall>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
chmod 600 "$CH_DIR/users.xml"

# Our own process group (setsid), so the stop script can end exactly what we started.
cd "$CH_DIR"
setsid "$SERVER" --config-file="$CH_DIR/config.xml" --pid-file="$CH_DIR/clickhouse.pid" \
  >"$CH_DIR/log/stdout.log" 2>&1 < /dev/null &
echo $! > "$CH_DIR/launcher.pid"

URL="http://127.0.0.1:$HTTP_PORT"
for _ in $(seq 1 120); do
  if [ "$(python3 -c "import urllib.request,sys
try: print(urllib.request.urlopen('$URL/ping', timeout=1).read().decode().strip())
except Exception: print('')" 2>/dev/null)" = "Ok." ]; then
    break
  fi
  if ! kill -0 "$(cat "$CH_DIR/launcher.pid")" 2>/dev/null; then
    echo "clickhouse-server exited during startup; its log:" >&2
    tail -n 30 "$CH_DIR/log/stdout.log" "$CH_DIR/log/clickhouse-server.err.log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 0.5
done
VERSION=$(python3 -c "import urllib.request; print(urllib.request.urlopen('$URL/?query=SELECT%20version()', timeout=5).read().decode().strip())") || {
  echo "clickhouse-server did not answer on $URL within 60 s" >&2
  tail -n 30 "$CH_DIR/log/clickhouse-server.err.log" >&2 2>/dev/null || true
  exit 1
}
echo "clickhouse-server $VERSION listening on $URL" >&2

{
  echo "export ONCALL_AI_TEST_CLICKHOUSE=$URL"
  echo "export ONCALL_AI_TEST_CLICKHOUSE_USER=oncall"
  echo "export ONCALL_AI_TEST_CLICKHOUSE_PASSWORD=$PASSWORD"
} >> "$CI_TMP/env.sh"
