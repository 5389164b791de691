#!/usr/bin/env bash
# Checks what operators deploy, offline: the Kubernetes manifests against the Kubernetes
# schemas (strict: an unknown field fails), the kustomization's resource list, the Prometheus
# alert rules (promtool check + the rules' unit tests), and the Grafana dashboard's queries
# (parsed by promtool); every metric the rules and the dashboard name must be documented in
# the metrics table of docs/operations.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_kubernetes_validate
ensure_promtool

k8s=deploy/kubernetes
listed=$(sed -n '/^resources:/,/^[a-z]/p' "$k8s/kustomization.yaml" | sed -n 's/^  - //p' | sort)
present=$(cd "$k8s" && ls *.yaml | grep -v '^kustomization.yaml$' | sort)
[[ "$listed" == "$present" ]] || die "kustomization.yaml lists [$listed] but $k8s has [$present]"
for version in 1.29.0 1.37.0; do
  # shellcheck disable=SC2086
  "$KUBERNETES_VALIDATE" --strict --quiet -k "$version" $(sed 's|^|'"$k8s"'/|' <<<"$present") \
    || die "the manifests do not validate against Kubernetes $version"
done
log "manifests: $(wc -w <<<"$present") files valid against Kubernetes 1.29 and 1.37"

obs=deploy/observability
"$PROMTOOL" check rules "$obs/alerts.yaml" >/dev/null || die "promtool check rules failed"
(cd "$obs" && "$PROMTOOL" test rules alerts.test.yaml) >/dev/null \
  || (cd "$obs" && "$PROMTOOL" test rules alerts.test.yaml; die "the alert rules' unit tests failed")

# The dashboard's queries, as recording rules, so that promtool parses each one.
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$K8S_VALIDATE_PYTHON" - "$obs/grafana-dashboard.json" "$tmp/dashboard-rules.yaml" <<'PY'
import json, sys, yaml
dash = json.load(open(sys.argv[1]))
rules = []
for panel in dash["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*")
        rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId']}", "expr": expr})
assert rules, "the dashboard has no queries"
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))

PY
"$PROMTOOL" check rules "$tmp/dashboard-rules.yaml" >/dev/null || die "a dashboard query does not parse"

missing=$(grep -ohE 'connector_[a-z_]+' "$obs/alerts.yaml" "$obs/grafana-dashboard.json" \
  | sed -E 's/_(bucket|count|sum)$//' | sort -u | while read -r m; do
      grep -q "\`$m\`" docs/operations.md || echo "$m"; done)
[[ -z "$missing" ]] || die "metrics named in $obs but not documented in docs/operations.md: $missing"
log "observability: alert rules checked and unit-tested; dashboard queries parse; every metric documented"
