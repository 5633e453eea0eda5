# Waits until every service of stack $1 has converged, for at most $2 seconds: replicated
# services run all their replicas (healthy, when they have a healthcheck) with no update in
# flight; jobs have completed. On failure, names the service, its task errors and the tail of
# its logs, and exits 1. Prints one line per service when done.
# $3 is `update` (a rollout: a service Swarm rolled back failed it) or `restore` (going back to
# an earlier deploy: a service Swarm rolled back is where it should be once the rollback ends).
# $4: when this deploy began (epoch seconds); an update state older than that is history.
stack=$1 timeout=$2 mode=${3:-update} since=${4:-0}
deadline=$(( $(date +%s) + timeout ))
report() {
  svc=$1 why=$2
  # The engine shows the tail of the output: the headline goes last.
  echo "service \`$svc\`: last log lines:" >&2
  docker service logs --raw --tail 8 "$svc" 2>&1 | tail -n 8 | sed 's/^/    /' >&2
  docker service ps "$svc" --no-trunc --format '  task {{.Name}} on {{.Node}}: {{.CurrentState}} {{.Error}}' 2>&1 | head -n 3 >&2
  echo "service \`$svc\` $why" >&2
}
while :; do
  waiting="" done_lines=""
  services=$(docker stack services "$stack" --format '{{.Name}}')
  if [ -z "$services" ]; then echo "stack \`$stack\` has no services" >&2; exit 1; fi
  for svc in $services; do
    info=$(docker service inspect "$svc" --format '{{if .Spec.Mode.ReplicatedJob}}job{{else if .Spec.Mode.Global}}global{{else}}replicated{{end}} {{if .UpdateStatus}}{{.UpdateStatus.State}} {{with .UpdateStatus.StartedAt}}{{.Unix}}{{end}}{{end}}')
    kind=${info%% *} update=${info#* } began=0
    case "$update" in *" "*) began=${update#* } update=${update%% *};; esac
    # A rollback left by an earlier, failed rollout says nothing about this one.
    [ "${began:-0}" -gt 0 ] && [ $((began + 2)) -lt "$since" ] && update=""
    case "$mode $update" in
      "restore rollback_started") waiting="$waiting $svc"; continue;;
      "restore rollback_completed") ;;
      *" rollback_started"|*" rollback_paused"|*" rollback_completed")
        report "$svc" "was rolled back: its update failed"; exit 1;;
    esac
    case "$update" in
      paused) report "$svc" "update paused: a new task failed"; exit 1;;
      updating) waiting="$waiting $svc"; continue;;
    esac
    replicas=$(docker service ls --filter "id=$(docker service inspect -f '{{.ID}}' "$svc")" --format '{{.Replicas}}')
    # Without a registry, a node without the image rejects the task for good: say so now
    # rather than at the timeout.
    latest=$(docker service ps "$svc" --no-trunc --format '{{.CurrentState}} {{.Error}}' | head -n 1)
    case "$latest" in
      Rejected*"No such image"*)
        report "$svc" "cannot start: its image is not on the node (run \`minipaas deploy build\`, or check the image name)"; exit 1;;
    esac
    if [ "$kind" = job ]; then
      # "0/1 (1/1 completed)"
      completed=$(echo "$replicas" | sed -n 's/.*(\([0-9]*\)\/\([0-9]*\) completed).*/\1 \2/p')
      if [ -n "$completed" ] && [ "${completed% *}" = "${completed#* }" ]; then
        done_lines="$done_lines\njob $svc completed (exit 0)"
        continue
      fi
      # A failed attempt is restarted after a delay, so only the restart policy says when
      # the job has run out of attempts.
      policy=$(docker service inspect "$svc" --format '{{with .Spec.TaskTemplate.RestartPolicy}}{{.Condition}} {{.MaxAttempts}}{{end}}')
      condition=${policy%% *} attempts=${policy#* }
      failed=$(docker service ps "$svc" --format '{{.CurrentState}}' | grep -c '^Failed')
      if [ "$failed" -gt 0 ] && { [ "$condition" = none ] || { [ "${attempts:-0}" -gt 0 ] && [ "$failed" -gt "$attempts" ]; }; }; then
        code=$(docker service ps "$svc" --no-trunc --format '{{.Error}}' | sed -n 's/.*non-zero exit (\([0-9]*\)).*/\1/p' | head -n 1)
        report "$svc" "job failed (exit ${code:-unknown}) after its last attempt"; exit 1
      fi
      waiting="$waiting $svc"
    else
      running=${replicas%%/*} wanted=${replicas#*/}; wanted=${wanted%% *}
      if [ "$running" = "$wanted" ]; then
        done_lines="$done_lines\n$svc $replicas"
      else
        waiting="$waiting $svc"
      fi
    fi
  done
  if [ -z "$waiting" ]; then printf "$done_lines\n" | sed '/^$/d'; exit 0; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    for svc in $waiting; do report "$svc" "has not converged after ${timeout}s"; done
    exit 1
  fi
  sleep 2
done
