# Sourced by scripts/demo.sh and scripts/bench-operator-scale.sh (not run on its own): what
# both do to run the operator on the local control plane as the chart would.
#   free_port                          a free TCP port on 127.0.0.1
#   apply_crds KUBECTL KUBECONFIG      the CRDs in crds/, waited for until Established
#   apply_chart_rbac KUBECTL HELM KUBECONFIG
#                                      the namespace registry-operator, and the chart's
#                                      ServiceAccount and RBAC (helm template | kubectl apply)
#   sa_kubeconfig KUBECTL KUBECONFIG CLUSTER_DIR OUT
#                                      OUT: a kubeconfig that signs in with a token of that
#                                      ServiceAccount (2 h), as a Pod's would
#   end_pids PID...                    ends each PID still running (started by the caller)
# kubectl's and helm's output is written to standard output, for the caller to show or drop.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

apply_crds() {
  local kubectl=$1 kc=$2
  "$kubectl" --kubeconfig "$kc" apply -f crds/
  "$kubectl" --kubeconfig "$kc" wait --for=condition=Established crd --all --timeout=60s >/dev/null
}

apply_chart_rbac() {
  local kubectl=$1 helm=$2 kc=$3
  "$kubectl" --kubeconfig "$kc" create namespace registry-operator >/dev/null
  "$helm" template registry-operator charts/registry-operator --namespace registry-operator \
    --set rbac.aggregateToDefaultRoles=false \
    --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml |
    "$kubectl" --kubeconfig "$kc" apply --namespace registry-operator -f -
}

sa_kubeconfig() {
  local kubectl=$1 kc=$2 cluster=$3 out=$4 token server
  token=$("$kubectl" --kubeconfig "$kc" --namespace registry-operator create token registry-operator --duration=2h)
  server=$("$kubectl" --kubeconfig "$kc" config view --raw -o jsonpath='{.clusters[0].cluster.server}')
  KUBECONFIG=$out "$kubectl" config set-cluster local --server="$server" \
    --certificate-authority="$cluster/certs/ca.crt" --embed-certs=true >/dev/null
  KUBECONFIG=$out "$kubectl" config set-credentials registry-operator --token="$token" >/dev/null
  KUBECONFIG=$out "$kubectl" config set-context operator --cluster=local --user=registry-operator >/dev/null
  KUBECONFIG=$out "$kubectl" config use-context operator >/dev/null
  chmod 600 "$out"
}

end_pids() {
  local pid
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
}
