#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing `reproduce --executor slurm` against a real
# Slurm (not a mock): `cluster/one-node.sh up` installs Debian's slurm-wlm and munge when missing,
# writes a slurm.conf for this machine, starts munged, slurmctld and slurmd and waits until the node is
# idle; `cluster/one-node.sh down` stops them again. Needs root (it runs the daemons). The settings
# are the ones measured in docs/design.md ("A one-node Slurm"); the state lives under $EMSL_SLURM_DIR
# (default /var/tmp/emsl-slurm), so `down` followed by `up` starts from an empty queue.
set -euo pipefail

dir=${EMSL_SLURM_DIR:-/var/tmp/emsl-slurm}
conf=/etc/slurm/slurm.conf

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "cluster/one-node.sh: needs root (it installs packages and runs the Slurm daemons)" >&2
        exit 1
    fi
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
        return
    fi
    if ! command -v apt-get >/dev/null; then
        echo "cluster/one-node.sh: slurm-wlm and munge are not installed and there is no apt-get to install them" >&2
        exit 1
    fi
    echo "installing slurm-wlm and munge (Debian packages)..." >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }; then
        echo "cluster/one-node.sh: could not install slurm-wlm and munge with apt-get; install them and rerun" >&2
        exit 1
    fi
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(free -m | awk '/^Mem:/ {print $2}') - 1024 ))
    mkdir -p /etc/slurm "$dir/ctld" "$dir/d" "$dir/log"
    cat > "$conf" <<CONF
# Written by cluster/one-node.sh: a one-node test cluster (docs/design.md, "A one-node Slurm").
ClusterName=emsl-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.log
ReturnToService=2
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if [ -f /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then
        return
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge /run/munge
    runuser -u munge -- /usr/sbin/munged
}

up() {
    need_root
    install_packages
    down_quietly
    rm -rf "$dir"
    write_conf
    start_munge
    slurmctld
    slurmd
    for _ in $(seq 1 100); do
        if [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; then
            echo "one-node cluster up: $(sinfo -h -o '%P %D %c CPUs %m MB')" >&2
            return
        fi
        sleep 0.1
    done
    echo "cluster/one-node.sh: the node did not become idle in 10 s; logs in $dir/log" >&2
    sinfo >&2 || true
    exit 1
}

down_quietly() {
    if command -v scontrol >/dev/null && [ -f "$conf" ]; then
        scontrol shutdown >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
            sleep 0.1
        done
    fi
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
    if [ -f /run/munge/munged.pid ]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f /run/munge/munged.pid
    fi
}

case "${1:-}" in
    up) up ;;
    down) need_root; down_quietly; echo "one-node cluster down" >&2 ;;
    *) echo "usage: cluster/one-node.sh up|down" >&2; exit 2 ;;
esac
