# Requests every route through Caddy on this node's published port ($1), retrying each for at
# most $2 seconds in all; the rest are HOST PATH pairs. A route passes on any 2xx or 3xx (an
# HTTPS host answers plain HTTP with a redirect). Prints one line per route; exits 1 if one
# never passed.
port=$1 timeout=$2
shift 2
deadline=$(( $(date +%s) + timeout ))
get() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 10 -w '%{http_code}' -H "Host: $1" "http://127.0.0.1:$port$2"
  else
    wget -S -q -O /dev/null -T 10 --header "Host: $1" "http://127.0.0.1:$port$2" 2>&1 \
      | awk '/^  HTTP\// {c=$2} END {print c+0}'
  fi
}
failed=0
while [ $# -ge 2 ]; do
  host=$1 path=$2
  shift 2
  while :; do
    code=$(get "$host" "$path")
    case "$code" in
      2??|3??) echo "http://$host$path: $code"; break;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "http://$host$path answered ${code:-nothing} through Caddy on :$port" >&2
      failed=1
      break
    fi
    sleep 2
  done
done
exit $failed
