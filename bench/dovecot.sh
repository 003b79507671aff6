#!/bin/bash
# bench/dovecot.sh — a throw-away Dovecot (Debian's dovecot-imapd and
# dovecot-lmtpd) living entirely in one directory, for benchmarks.
#
# usage: bench/dovecot.sh setup DIR   write DIR/dovecot.conf, users, pick ports
#        bench/dovecot.sh start DIR   setup (if not done), start, wait until
#                                     both ports accept; prints
#                                     "lmtp_port=N imap_port=N imaps_port=N pid=N"
#        bench/dovecot.sh stop DIR    stop the Dovecot started on DIR
#        bench/dovecot.sh conf DIR    print the path of the config file
#
# Everything (base_dir, state_dir, log, maildirs, passwd-file) is under DIR;
# the only listeners are LMTP and IMAP on 127.0.0.1, on free ports found by
# binding 127.0.0.1:0.  Durability: mail_fsync = always.
#
# Users: user1..user$BENCH_USERS (default 20) and "fetch", all with the
# password $BENCH_PASSWORD (default "bench-pass"), stored in the clear, or
# hashed with BENCH_SCHEME=SHA512-CRYPT at setup (openssl passwd -6, 5000
# rounds, Dovecot's usual scheme): what a login costs then is comparable.
#
# TLS: with BENCH_TLS=1 at setup, openssl makes a self-signed ECDSA P-256
# certificate in DIR, and Dovecot gets ssl = yes, an imaps listener on
# 127.0.0.1 (imaps_port), TLS 1.2 only, ECDHE-ECDSA AES-GCM/ChaCha20
# suites, the P-256 group, and COMPRESS=DEFLATE (the imap_zlib plugin,
# level 1 as mailrepd).  Without it: ssl = no and imaps_port=0.  LMTP recipients are
# NAME@any-domain (the domain is ignored, as with mailrepd).
#
# Users and processes: run as an ordinary user, every Dovecot process runs
# as that user.  Run as root, Dovecot's master runs as root, its internal
# and login processes as Debian's "dovecot" and "dovenull" users, and mail
# is stored as the system user "dovebench" (created if missing; Dovecot
# refuses to access mail as UID 0), falling back to "dovecot".
set -eu

prog=${0##*/}
BENCH_USERS=${BENCH_USERS:-20}
BENCH_PASSWORD=${BENCH_PASSWORD:-bench-pass}
DOVECOT=${DOVECOT:-/usr/sbin/dovecot}

# die MSG: print MSG on stderr and exit 1.
die() {
	echo "$prog: $*" >&2
	exit 1
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1, one a line
# (all bound at once, so they differ, then released).
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
}

# wait_port PORT SECONDS: wait until 127.0.0.1:PORT accepts a connection.
wait_port() {
	local port=$1 tries=$(($2 * 50))
	while [ "$tries" -gt 0 ]; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.02
		tries=$((tries - 1))
	done
	return 1
}

# mail_owner: print "uid gid" that mail files are stored as (see above).
mail_owner() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "$(id -u) $(id -g)"
		return
	fi
	if ! getent passwd dovebench >/dev/null; then
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin dovebench >/dev/null 2>&1 || true
	fi
	local u=dovebench
	getent passwd dovebench >/dev/null || u=dovecot
	echo "$(id -u "$u") $(id -g "$u")"
}

# check_reachable DIR UID: warn when a parent of DIR is not searchable by
# UID (then deliveries fail with "Temporary internal error").
check_reachable() {
	local p=$1 uid=$2
	[ "$uid" -eq "$(id -u)" ] && return 0
	while [ "$p" != / ] && [ -n "$p" ]; do
		p=$(dirname "$p")
		if [ "$(stat -c %u "$p")" != "$uid" ] &&
		    [ $((0$(stat -c %a "$p") & 1)) -eq 0 ]; then
			echo "$prog: warning: $p is not searchable by others; Dovecot's" \
				"mail user (uid $uid) cannot reach the maildirs" >&2
			return 0
		fi
	done
}

# setup DIR: write the configuration, passwd-file and directories.
setup() {
	local dir=$1
	[ -f "$dir/ports" ] && return 0
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# Dovecot's unprivileged processes must be able to reach DIR.
	chmod 0755 "$dir"
	mkdir -p "$dir/run" "$dir/state" "$dir/mail"
	local owner uid gid internal login
	owner=$(mail_owner)
	uid=${owner% *}
	gid=${owner#* }
	chown "$uid:$gid" "$dir/mail"
	check_reachable "$dir" "$uid"
	if [ "$(id -u)" -eq 0 ]; then
		internal=dovecot
		login=dovenull
	else
		internal=$(id -un)
		login=$internal
	fi

	local ports lmtp_port imap_port imaps_port=0 ssl_conf="ssl = no"
	local zlib_conf=""
	ports=$(free_ports 3)
	lmtp_port=$(echo "$ports" | sed -n 1p)
	imap_port=$(echo "$ports" | sed -n 2p)
	if [ "${BENCH_TLS:-0}" = 1 ]; then
		imaps_port=$(echo "$ports" | sed -n 3p)
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -days 30 -subj /CN=localhost \
			-addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
			-keyout "$dir/tls-key.pem" -out "$dir/tls-cert.pem" \
			>/dev/null 2>&1 || die "openssl could not make a certificate"
		chmod 0600 "$dir/tls-key.pem"
		ssl_conf="ssl = yes
ssl_cert = <$dir/tls-cert.pem
ssl_key = <$dir/tls-key.pem
ssl_min_protocol = TLSv1.2
ssl_cipher_list = ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305
ssl_curve_list = P-256
ssl_prefer_server_ciphers = yes"
		zlib_conf="mail_plugins = \$mail_plugins zlib imap_zlib"
	fi

	: >"$dir/passwd"
	local i stored
	for i in $(seq 1 "$BENCH_USERS") fetch; do
		case $i in fetch) n=fetch ;; *) n=user$i ;; esac
		case ${BENCH_SCHEME:-PLAIN} in
		PLAIN) stored="{PLAIN}$BENCH_PASSWORD" ;;
		SHA512-CRYPT)
			stored="{SHA512-CRYPT}$(openssl passwd -6 "$BENCH_PASSWORD")" ;;
		*) die "BENCH_SCHEME: PLAIN or SHA512-CRYPT" ;;
		esac
		echo "$n:$stored::::::" >>"$dir/passwd"
	done
	chmod 0644 "$dir/passwd"

	cat >"$dir/dovecot.conf" <<EOF
# Generated by bench/dovecot.sh; a benchmark instance, loopback only.
instance_name = bench-$(basename "$dir")
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
$ssl_conf
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = $internal
default_login_user = $login
first_valid_uid = 1
first_valid_gid = 1

mail_location = maildir:$dir/mail/%n/Maildir
mail_fsync = always

# Recipients are NAME@domain; the passwd-file holds bare names.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $dir/passwd
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/mail/%n
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
  }
  # Room for a burst of 200+ simultaneous logins (one process each).
  process_limit = 1024
}
service imap {
  process_limit = 1024
}
service auth {
  client_limit = 2048
}
service anvil {
  client_limit = 2048
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp_port
  }
  unix_listener lmtp {
    mode = 0600
  }
}
protocol imap {
  # The idle-connection benchmark logs many sessions in from one address.
  mail_max_userip_connections = 10000
  $zlib_conf
}
plugin {
  imap_compress_deflate_level = 1
}
EOF
	echo "lmtp_port=$lmtp_port imap_port=$imap_port imaps_port=$imaps_port" >"$dir/ports"
}

# start DIR: start Dovecot (daemonized) and wait until both ports accept.
start() {
	local dir=$1
	[ -x "$DOVECOT" ] || die "$DOVECOT missing; install dovecot-imapd dovecot-lmtpd"
	setup "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/run/master.pid" ] && kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null; then
		die "Dovecot already running on $dir"
	fi
	local lmtp_port imap_port imaps_port=0 pid
	eval "$(cat "$dir/ports")"
	# On failure below, leave nothing running.
	trap 'stop "$dir" >/dev/null 2>&1 || true' EXIT
	"$DOVECOT" -c "$dir/dovecot.conf" || die "dovecot failed to start; see $dir/dovecot.log"
	wait_port "$lmtp_port" 20 || die "LMTP port $lmtp_port never accepted; see $dir/dovecot.log"
	wait_port "$imap_port" 20 || die "IMAP port $imap_port never accepted; see $dir/dovecot.log"
	if [ "$imaps_port" != 0 ]; then
		wait_port "$imaps_port" 20 || die "IMAPS port $imaps_port never accepted; see $dir/dovecot.log"
	fi
	pid=$(cat "$dir/run/master.pid")
	trap - EXIT
	echo "lmtp_port=$lmtp_port imap_port=$imap_port imaps_port=$imaps_port pid=$pid"
}

# descendants PID: print the PIDs of every descendant of PID, one a line.
descendants() {
	local want=" $1 " found=1 f pid ppid rest
	while [ "$found" -eq 1 ]; do
		found=0
		for f in /proc/[0-9]*/stat; do
			{ read -r pid rest <"$f"; } 2>/dev/null || continue
			rest=${rest##*) }
			ppid=$(echo "$rest" | cut -d' ' -f2)
			case $want in *" $ppid "*)
				case $want in *" $pid "*) ;; *)
					want="$want$pid "
					found=1 ;;
				esac ;;
			esac
		done
	done
	for pid in $want; do [ "$pid" = "$1" ] || echo "$pid"; done
}

# stop DIR: SIGTERM the master, wait for all its processes, SIGKILL after 10 s.
stop() {
	local dir=$1 pid kids tries p
	[ -f "$dir/run/master.pid" ] || return 0
	pid=$(cat "$dir/run/master.pid")
	if kill -0 "$pid" 2>/dev/null; then
		kids=$(descendants "$pid")
		kill -TERM "$pid" 2>/dev/null || true
		tries=500
		while kill -0 "$pid" 2>/dev/null && [ "$tries" -gt 0 ]; do
			sleep 0.02
			tries=$((tries - 1))
		done
		for p in $pid $kids; do
			kill -KILL "$p" 2>/dev/null || true
		done
	fi
	rm -f "$dir/run/master.pid"
}

[ $# -eq 2 ] || die "usage: $prog setup|start|stop|conf DIR"
case $1 in
setup) setup "$2"; cat "$2/ports" ;;
start) start "$2" ;;
stop) stop "$2" ;;
conf) setup "$2"; echo "$(cd "$2" && pwd)/dovecot.conf" ;;
*) die "usage: $prog setup|start|stop|conf DIR" ;;
esac
