#!/usr/bin/env bash
# scripts/launch/local_slurm.sh — a one-machine Slurm (munged + slurmctld + slurmd on this host)
# to try slurm.sbatch with Debian's slurm-wlm, without touching /etc/slurm:
#
#   scripts/launch/local_slurm.sh start DIR   # writes DIR/slurm.conf, starts the daemons, waits for the node
#   SLURM_CONF=DIR/slurm.conf sbatch --ntasks=3 --wait scripts/launch/slurm.sbatch x.toml
#   scripts/launch/local_slurm.sh stop DIR
#
# Needs root (slurmd runs jobs as their user) and munge's key (/etc/munge/munge.key, made when
# the package is installed). LOCAL_SLURM_PORT (default 6817): slurmctld's port, slurmd's the next.
# Prints why and exits 3 when a daemon does not come up.
set -euo pipefail
cmd=${1:?start|stop}; dir=$(realpath -m "${2:?DIR}")
conf=$dir/slurm.conf
if [ "$cmd" = stop ]; then
  for d in slurmd slurmctld; do [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true; done
  [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
  exit 0
fi
command -v slurmctld > /dev/null || { echo "local_slurm: slurm-wlm is not installed (apt-get install slurm-wlm)"; exit 3; }
mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/log" /run/munge
host=$(hostname -s)
ctld_port=${LOCAL_SLURM_PORT:-6817}
cpus=$(( $(nproc) * 4 )) # a server and its nodes mostly wait on each other: 4 tasks a core
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$conf" <<CONF
ClusterName=fedvlm-local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
chown munge:munge /run/munge 2>/dev/null || true
if ! munge -n > /dev/null 2>&1; then
  # As the munge user: munged refuses files owned by another user than the one it runs as.
  runuser -u munge -- munged 2> "$dir/log/munged.err" || { echo "local_slurm: munged did not start: $(cat "$dir/log/munged.err")"; exit 3; }
  cp /run/munge/munged.pid "$dir/munged.pid" 2>/dev/null || true
fi
munge -n | unmunge > /dev/null || { echo "local_slurm: munge does not work here"; exit 3; }
export SLURM_CONF=$conf
slurmctld -f "$conf" || { echo "local_slurm: slurmctld did not start: $(tail -3 "$dir/log/slurmctld.log")"; exit 3; }
slurmd -f "$conf" || { echo "local_slurm: slurmd did not start: $(tail -3 "$dir/log/slurmd.log")"; exit 3; }
for i in $(seq 1 50); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)'; then echo "local_slurm: up ($conf)"; exit 0; fi
  sleep 0.2
done
echo "local_slurm: the node did not come up: $(sinfo -h 2>&1 | head -2); slurmd: $(tail -3 "$dir/log/slurmd.log")"
exit 3
