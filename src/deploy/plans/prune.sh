# Removes the versions of stack $2's Docker objects of kind $1 (secret|config) that no service
# uses and that are not named in the rest of the arguments (what the env's files reference).
# Only objects minipaas created for this stack (label minipaas.stack) are candidates, and only
# those of base name $3 when it is not empty.
kind=$1 stack=$2 base=$3
shift 3
case "$kind" in secret) field=Secrets name=SecretName;; config) field=Configs name=ConfigName;; *) exit 2;; esac
used=" $* "
for id in $(docker service ls -q); do
  used="$used $(docker service inspect --format "{{range .Spec.TaskTemplate.ContainerSpec.$field}}{{.$name}} {{end}}" "$id") "
done
filter="label=minipaas.stack=$stack"
[ -n "$base" ] && set -- --filter "label=minipaas.base=$base" || set --
for n in $(docker "$kind" ls --filter "$filter" "$@" --format '{{.Name}}'); do
  case "$used" in
    *" $n "*) ;;
    *) docker "$kind" rm "$n" >/dev/null && echo "removed $kind $n";;
  esac
done
