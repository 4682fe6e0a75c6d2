#!/usr/bin/env bash
# The Slurm backend under a real single-node Slurm (Debian slurm-wlm: slurmctld + slurmd + munged, started
# here as root with a private config, key and state in a temporary folder): test/slurm/sweep-slurm.cluster.ts
# submits a sweep with `moe-scope sweep --backend slurm --submit` and checks the array and the dependent
# merge job against the local backend. Runs inside fresh network and PID namespaces (unshare): the daemons
# are reachable only inside, and all of them die with the namespace however the test ends.
#   apt-get install -y slurm-wlm munge      (~1 minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MOE_SCOPE_SLURM_NS:-}" != 1 ]; then
  for b in slurmctld slurmd munged sbatch squeue; do
    command -v "$b" >/dev/null || { echo "test-slurm: $b not found: apt-get install -y slurm-wlm munge" >&2; exit 1; }
  done
  [ "$(id -u)" = 0 ] || { echo "test-slurm: slurmd must run as root to start jobs; run as root" >&2; exit 1; }
  unshare --net --pid --fork --mount-proc true 2>/dev/null || { echo "test-slurm: cannot create network and PID namespaces here: unshare --net --pid --fork --mount-proc failed" >&2; exit 1; }
  node esbuild.mjs
  exec unshare --net --pid --fork --kill-child --mount-proc env MOE_SCOPE_SLURM_NS=1 bash "$0" "$@"
fi
# Only loopback exists here. Slurm resolves addresses with AI_ADDRCONFIG, which ignores 127.0.0.1 itself,
# so give lo one more (private, unroutable) address.
ip link set lo up
ip addr add 10.254.0.1/32 dev lo
D=$(mktemp -d /tmp/moe-scope-slurm.XXXXXX)
mkdir -p "$D/state" "$D/spool" "$D/munge"
chmod 700 "$D/munge"
head -c 1024 /dev/urandom > "$D/munge/munge.key"
chmod 600 "$D/munge/munge.key"
munged --force --socket="$D/munge/munge.sock" --key-file="$D/munge/munge.key" --pid-file="$D/munge/munged.pid" \
  --log-file="$D/munge/munged.log" --seed-file="$D/munge/seed"
host=$(hostname)
cat > "$D/slurm.conf" <<CONF
ClusterName=moescope
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$D/slurm.conf"
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %T | grep -q idle || { echo "test-slurm: the node never became idle"; tail -n 20 "$D/slurmctld.log" "$D/slurmd.log"; exit 1; }
status=0
MOE_SCOPE_SLURM_LOGS="$D" bash scripts/run-test.sh test/slurm/sweep-slurm.cluster.ts || status=$?
if [ $status != 0 ]; then tail -n 20 "$D/slurmctld.log" "$D/slurmd.log"; fi
exit $status
