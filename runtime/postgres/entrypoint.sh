#!/bin/bash
# Starts PostgreSQL in the foreground as user `postgres`, creating the cluster in $PGDATA on the
# first start only. Environment, as in the official image:
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE  the superuser's password (one of them, required
#                                               on first start; the file must be readable by
#                                               `postgres`: Swarm secrets are, mode 0444)
#   POSTGRES_USER  the superuser (default `postgres`)
#   POSTGRES_DB    a database created on first start (default: the user's name)
set -Eeuo pipefail

# `docker run IMAGE -c shared_buffers=256MB` means postgres with those flags.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
	# Volumes arrive owned by root; everything after this runs as postgres.
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$BASH_SOURCE" "$@"
fi

if [ "$1" != 'postgres' ]; then
	exec "$@"
fi

fail() {
	echo "error: $*" >&2
	exit 1
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
		[ -z "${POSTGRES_PASSWORD:-}" ] || fail "set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, not both"
		[ -r "$POSTGRES_PASSWORD_FILE" ] || fail "POSTGRES_PASSWORD_FILE \`$POSTGRES_PASSWORD_FILE\` is not readable by user postgres"
		POSTGRES_PASSWORD="$(< "$POSTGRES_PASSWORD_FILE")"
	fi
	[ -n "${POSTGRES_PASSWORD:-}" ] || fail "the database is uninitialized and no superuser password is set; set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
	user="${POSTGRES_USER:-postgres}"
	db="${POSTGRES_DB:-$user}"

	echo "initializing the database cluster in $PGDATA"
	# The password goes through a pipe, never the command line or a file on disk.
	initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
	unset POSTGRES_PASSWORD
	{
		echo
		echo "# minipaas: listen on every address, password authentication for network clients"
		echo "listen_addresses = '*'"
		echo "password_encryption = 'scram-sha-256'"
	} >> "$PGDATA/postgresql.conf"
	echo 'host all all all scram-sha-256' >> "$PGDATA/pg_hba.conf"

	if [ "$db" != 'postgres' ]; then
		# A server on the Unix socket only, so no client connects before setup is done.
		pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >/dev/null
		psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username="$user" --dbname=postgres \
			--set db="$db" <<-'SQL'
			SELECT format('CREATE DATABASE %I', :'db')
			WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
			SQL
		pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	fi
	echo "database cluster ready (superuser \`$user\`, database \`$db\`)"
fi
unset POSTGRES_PASSWORD

exec "$@"
