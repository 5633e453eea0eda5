# Helpers of `minipaas deploy scale|remove` on the main manager: `sh -c SCRIPT lifecycle VERB ...`.
#   replicas SERVICE N      exit 0 when SERVICE is set to N replicas
#   gone SERVICE            exit 0 when SERVICE does not exist
#   stack-gone STACK        exit 0 when STACK has no service, network or container left
#   wait-gone STACK SECS    wait (at most SECS) until stack-gone; exit 1 naming what is left
verb=$1; shift
stack_gone() {
  [ -z "$(docker stack services -q "$1" 2>/dev/null)" ] &&
    [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$1")" ] &&
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$1")" ]
}
case "$verb" in
  replicas)
    [ "$(docker service inspect -f '{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}' "$1" 2>/dev/null)" = "$2" ];;
  gone)
    ! docker service inspect "$1" >/dev/null 2>&1;;
  stack-gone)
    stack_gone "$1";;
  wait-gone)
    deadline=$(( $(date +%s) + $2 ))
    # Networks go only once their containers have: Docker removes them in the background.
    while ! stack_gone "$1"; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        left=$(docker network ls --filter "label=com.docker.stack.namespace=$1" --format '{{.Name}}' | tr '\n' ' ')
        echo "stack \`$1\` is not gone after $2 s (networks left: ${left:-none}; containers: $(docker ps -aq --filter "label=com.docker.stack.namespace=$1" | wc -l))" >&2
        exit 1
      fi
      # A network whose last container went may stay behind; removing it again is harmless.
      docker network ls -q --filter "label=com.docker.stack.namespace=$1" | xargs -r docker network rm >/dev/null 2>&1
      sleep 1
    done;;
  *)
    echo "lifecycle: unknown verb \`$verb\`" >&2; exit 2;;
esac
