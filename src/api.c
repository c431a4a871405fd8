/*
 * api.c
 *		The SQL interface: add_sync, remove_sync, pause_sync, resume_sync,
 *		trigger_sync and wait_for_run.
 *
 * Users may read nango's catalog (row-level security shows them their own
 * syncs) but not write it: these functions check their arguments and the
 * caller's rights as the caller, then write the catalog as its owner.
 * Each asks for the database's scheduler to be woken at commit.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "nango.h"
#include "paging.h"
#include "sync_config.h"
#include "workers.h"
#include "writer.h"

PG_FUNCTION_INFO_V1(nango_add_sync);
PG_FUNCTION_INFO_V1(nango_remove_sync);
PG_FUNCTION_INFO_V1(nango_pause_sync);
PG_FUNCTION_INFO_V1(nango_resume_sync);
PG_FUNCTION_INFO_V1(nango_trigger_sync);
PG_FUNCTION_INFO_V1(nango_wait_for_run);
PG_FUNCTION_INFO_V1(nango_start_scheduler);

/* Saved identity while the catalog is written as its owner. */
typedef struct CatalogAccess
{
	Oid			save_user;
	int			save_sec;
} CatalogAccess;

/*
 * Switches to the owner of nango's catalog, so the function can write it
 * although the caller may only read it.  The caller's own rights were
 * checked before; catalog_access_end switches back (an ERROR does too).
 */
static void
catalog_access_begin(CatalogAccess *access)
{
	Oid			nsp = get_namespace_oid("nango", false);
	Oid			relid = get_relname_relid("syncs", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		elog(ERROR, "nango.syncs is missing");
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&access->save_user, &access->save_sec);
	SetUserIdAndSecContext(owner, access->save_sec |
						   SECURITY_LOCAL_USERID_CHANGE);
}

static void
catalog_access_end(CatalogAccess *access)
{
	SetUserIdAndSecContext(access->save_user, access->save_sec);
}

static void
spi_begin(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static char *
jsonb_arg_text(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return DatumGetCString(DirectFunctionCall1(jsonb_out,
											   PG_GETARG_DATUM(argno)));
}

/* Raises the error for a null argument that must have a value. */
static void
require_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" of nango.%s must not be null",
						argname, get_func_name(fcinfo->flinfo->fn_oid)),
				 errhint("Give a value, or leave the argument out to take "
						 "its default.")));
}

/* A sync name: 1 to 63 bytes, no control characters. */
static void
check_sync_name(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid sync name \"%s\"",
						pnstrdup(name, pg_mbcliplen(name, len, NAMEDATALEN - 1))),
				 errdetail("A sync name has between 1 and %d bytes.",
						   NAMEDATALEN - 1),
				 errhint("Choose a short name such as \"github_issues\".")));
	for (const char *p = name; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid sync name \"%s\"", name),
					 errdetail("A sync name may not hold control characters."),
					 errhint("Choose a short name such as \"github_issues\".")));
}

/*
 * A frequency between one second and ten years, so that the next run time
 * is always ahead and never out of range.
 */
static void
check_frequency(Interval *frequency)
{
	Interval	one_second;
	Interval	ten_years;

	memset(&one_second, 0, sizeof(one_second));
	one_second.time = USECS_PER_SEC;
	memset(&ten_years, 0, sizeof(ten_years));
	ten_years.month = 10 * MONTHS_PER_YEAR;
	if (DatumGetBool(DirectFunctionCall2(interval_gt,
										 IntervalPGetDatum(frequency),
										 IntervalPGetDatum(&ten_years))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid frequency \"%s\"",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(frequency)))),
				 errdetail("A sync runs at least once in ten years."),
				 errhint("Give an interval of at most '10 years', or pause "
						 "the sync with nango.pause_sync and trigger it by "
						 "hand.")));
	if (DatumGetBool(DirectFunctionCall2(interval_lt,
										 IntervalPGetDatum(frequency),
										 IntervalPGetDatum(&one_second))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid frequency \"%s\"",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(frequency)))),
				 errdetail("A sync runs at most once a second."),
				 errhint("Give an interval of at least '1 second', such as "
						 "'5 minutes'.")));
}

/* unique_key as a List of column names; nulls and nested arrays refused. */
static List *
unique_key_list(ArrayType *array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	if (ARR_NDIM(array) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid unique_key: it must be a one-dimensional array"),
				 errhint("Name the key columns, such as '{id}'.")));
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid unique_key: it holds a null"),
					 errhint("Name the key columns, such as '{id}'.")));
		result = lappend(result, TextDatumGetCString(elems[i]));
	}
	return result;
}

/*
 * nango.add_sync: checks every argument, then registers the sync, due at
 * once.  Returns the sync's id.
 */
Datum
nango_add_sync(PG_FUNCTION_ARGS)
{
	const char *argnames[] = {"name", "url", "target_table", "unique_key",
	"frequency", "method", "headers", "query_params"};
	char	   *name;
	char	   *url;
	char	   *method;
	char	   *headers;
	char	   *query_params;
	char	   *body;
	char	   *response_path = NULL;
	char	   *paging;
	char	   *columns;
	PagingConfig paging_config;
	List	   *column_paths = NIL;
	List	   *unique_key;
	Oid			table;
	CatalogAccess access;
	int64		id;

	nango_check_preloaded();
	for (int i = 0; i < lengthof(argnames); i++)
		require_arg(fcinfo, i, argnames[i]);

	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_sync_name(name);
	url = sync_check_url("url", text_to_cstring(PG_GETARG_TEXT_PP(1)));
	unique_key = unique_key_list(PG_GETARG_ARRAYTYPE_P(3));
	check_frequency(PG_GETARG_INTERVAL_P(4));
	method = sync_check_method(text_to_cstring(PG_GETARG_TEXT_PP(5)));
	headers = jsonb_arg_text(fcinfo, 6);
	(void) sync_parse_name_values("headers", headers, true);
	query_params = jsonb_arg_text(fcinfo, 7);
	(void) sync_parse_name_values("query_params", query_params, false);
	body = jsonb_arg_text(fcinfo, 8);
	if (!PG_ARGISNULL(9))
	{
		response_path = text_to_cstring(PG_GETARG_TEXT_PP(9));
		sync_check_path("response_path", response_path, true);
		sync_check_page_text("response_path", response_path);
	}
	paging = jsonb_arg_text(fcinfo, 10);
	paging_parse(paging, &paging_config);
	columns = jsonb_arg_text(fcinfo, 11);
	if (columns != NULL)
		column_paths = sync_parse_columns(columns);

	if (body != NULL && strcmp(method, "GET") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid body: a GET request carries no body"),
				 errhint("Use method => 'POST' (or PUT, PATCH), or leave body out.")));
	if (paging_config.type == PAGING_CURSOR && paging_config.in_body)
	{
		if (strcmp(method, "GET") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid paging: a cursor \"in\": \"body\" needs a request body"),
					 errhint("Use method => 'POST', or send the cursor in the query.")));
		if (body != NULL &&
			JB_ROOT_IS_SCALAR(PG_GETARG_JSONB_P(8)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid body: a cursor sent in the body needs a JSON object"),
					 errhint("Give body as an object, such as '{\"limit\": 100}'.")));
	}
	if (body != NULL && paging_config.type == PAGING_CURSOR &&
		paging_config.in_body && JB_ROOT_IS_ARRAY(PG_GETARG_JSONB_P(8)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid body: a cursor sent in the body needs a JSON object"),
				 errhint("Give body as an object, such as '{\"limit\": 100}'.")));

	table = writer_check_target(text_to_cstring(PG_GETARG_TEXT_PP(2)),
								unique_key, column_paths);

	spi_begin();
	catalog_access_begin(&access);
	{
		Datum		arg[2] = {CStringGetTextDatum(name),
		ObjectIdGetDatum(access.save_user)};
		Oid			type[2] = {TEXTOID, OIDOID};
		bool		isnull;

		if (SPI_execute_with_args("SELECT pg_has_role($2, owner, 'USAGE') "
								  "FROM nango.syncs WHERE name = $1",
								  2, type, arg, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not look up sync names");
		if (SPI_processed > 0 &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("sync \"%s\" already exists", name),
					 errhint("Choose another name, or remove the existing sync "
							 "with nango.remove_sync('%s').", name)));
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("sync \"%s\" already exists", name),
					 errdetail("It belongs to a role whose syncs you cannot see."),
					 errhint("Sync names are unique in a database: choose another name.")));
	}
	{
		Oid			types[13] = {TEXTOID, OIDOID, TEXTOID, TEXTOID, TEXTOID,
			TEXTOID, TEXTOID, OIDOID, TEXTARRAYOID, INTERVALOID, TEXTOID,
		TEXTOID, TEXTOID};
		Datum		values[13];
		char		nulls[13];
		bool		isnull;

		memset(nulls, ' ', sizeof(nulls));
		values[0] = CStringGetTextDatum(name);
		values[1] = ObjectIdGetDatum(access.save_user);
		values[2] = CStringGetTextDatum(url);
		values[3] = CStringGetTextDatum(method);
		values[4] = CStringGetTextDatum(headers);
		values[5] = CStringGetTextDatum(query_params);
		if (body)
			values[6] = CStringGetTextDatum(body);
		else
			nulls[6] = 'n';
		values[7] = ObjectIdGetDatum(table);
		values[8] = PG_GETARG_DATUM(3);
		values[9] = PG_GETARG_DATUM(4);
		if (response_path)
			values[10] = CStringGetTextDatum(response_path);
		else
			nulls[10] = 'n';
		if (paging)
			values[11] = CStringGetTextDatum(paging);
		else
			nulls[11] = 'n';
		if (columns)
			values[12] = CStringGetTextDatum(columns);
		else
			nulls[12] = 'n';

		if (SPI_execute_with_args("INSERT INTO nango.syncs (name, owner, url, "
								  "method, headers, query_params, body, "
								  "target_table, unique_key, frequency, "
								  "response_path, paging, columns, next_run_at) "
								  "VALUES ($1, $2::regrole, $3, $4, $5::jsonb, "
								  "$6::jsonb, $7::jsonb, $8::regclass, $9, $10, "
								  "$11, $12::jsonb, $13::jsonb, now()) "
								  "ON CONFLICT (name) DO NOTHING RETURNING id",
								  13, types, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not insert the sync");
		/* Another transaction added the name since the check above. */
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("sync \"%s\" already exists", name),
					 errdetail("Another session added it meanwhile."),
					 errhint("Sync names are unique in a database: choose another name.")));
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	}
	catalog_access_end(&access);
	SPI_finish();

	nango_wake_scheduler_at_commit();
	PG_RETURN_INT64(id);
}

/*
 * Finds a sync by name as the caller sees it (row-level security shows
 * only syncs of roles the caller has), and locks it until commit, raising
 * an error when it is not there.  Returns its id, or 0 when missing_ok and
 * there is none; *paused is set when not NULL.
 *
 * The lock makes a function that waited on another session's change of
 * the sync see that change: a sync removed meanwhile is not there.  The
 * scheduler skips a locked sync rather than wait for this transaction.
 */
static int64
find_sync(const char *name, bool missing_ok, bool *paused)
{
	Datum		arg[1] = {CStringGetTextDatum(name)};
	Oid			type[1] = {TEXTOID};
	bool		isnull;
	int64		id;

	if (SPI_execute_with_args("SELECT id FROM nango.syncs "
							  "WHERE name = $1 AND pg_has_role(owner, 'USAGE')",
							  1, type, arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up sync \"%s\"", name);
	if (SPI_processed > 0)
	{
		CatalogAccess access;
		Datum		idarg[1];
		Oid			idtype[1] = {INT8OID};

		idarg[0] = SPI_getbinval(SPI_tuptable->vals[0],
								 SPI_tuptable->tupdesc, 1, &isnull);
		catalog_access_begin(&access);
		if (SPI_execute_with_args("SELECT id, paused FROM nango.syncs "
								  "WHERE id = $1 FOR NO KEY UPDATE",
								  1, idtype, idarg, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not lock sync \"%s\"", name);
		catalog_access_end(&access);
	}
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return 0;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("sync \"%s\" does not exist", name),
				 errhint("SELECT name FROM nango.syncs lists your syncs.")));
	}
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	if (paused)
		*paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2,
											 &isnull));
	return id;
}

/* Runs one statement with the sync id as $1, as the catalog's owner. */
static void
exec_as_owner(const char *sql, int64 id, int expected)
{
	CatalogAccess access;
	Datum		arg[1] = {Int64GetDatum(id)};
	Oid			type[1] = {INT8OID};

	catalog_access_begin(&access);
	if (SPI_execute_with_args(sql, 1, type, arg, NULL, false, 0) != expected)
		elog(ERROR, "could not update sync " INT64_FORMAT, id);
	catalog_access_end(&access);
}

/*
 * nango.remove_sync: removes the sync and, by cascade, its runs.  A run
 * going on stops at its next page, finding its row gone.
 */
Datum
nango_remove_sync(PG_FUNCTION_ARGS)
{
	char	   *name;
	int64		id;

	require_arg(fcinfo, 0, "name");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	spi_begin();
	id = find_sync(name, true, NULL);
	if (id != 0)
		exec_as_owner("DELETE FROM nango.syncs WHERE id = $1", id,
					  SPI_OK_DELETE);
	SPI_finish();
	if (id == 0)
		ereport(NOTICE,
				(errmsg("sync \"%s\" does not exist, skipping", name)));
	nango_wake_scheduler_at_commit();
	PG_RETURN_BOOL(id != 0);
}

/* nango.pause_sync: no new runs; a run going on finishes. */
Datum
nango_pause_sync(PG_FUNCTION_ARGS)
{
	char	   *name;

	require_arg(fcinfo, 0, "name");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	spi_begin();
	exec_as_owner("UPDATE nango.syncs SET paused = true WHERE id = $1",
				  find_sync(name, false, NULL), SPI_OK_UPDATE);
	SPI_finish();
	nango_wake_scheduler_at_commit();
	PG_RETURN_VOID();
}

/* nango.resume_sync: runs again; an overdue run starts at once. */
Datum
nango_resume_sync(PG_FUNCTION_ARGS)
{
	char	   *name;

	require_arg(fcinfo, 0, "name");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	spi_begin();
	exec_as_owner("UPDATE nango.syncs SET paused = false, "
				  "next_run_at = coalesce(next_run_at, now()) WHERE id = $1",
				  find_sync(name, false, NULL), SPI_OK_UPDATE);
	SPI_finish();
	nango_wake_scheduler_at_commit();
	PG_RETURN_VOID();
}

/*
 * nango.trigger_sync: queues a run now.  A sync that already has a queued
 * or running run gets no second one; that run's id is returned.
 */
Datum
nango_trigger_sync(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		full_refresh;
	bool		paused;
	int64		id;
	int64		run_id;
	CatalogAccess access;
	bool		isnull;

	require_arg(fcinfo, 0, "name");
	require_arg(fcinfo, 1, "full_refresh");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	full_refresh = PG_GETARG_BOOL(1);

	nango_check_preloaded();
	spi_begin();
	id = find_sync(name, false, &paused);
	if (paused)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sync \"%s\" is paused", name),
				 errhint("Resume it first with nango.resume_sync('%s').",
						 name)));

	catalog_access_begin(&access);
	{
		Datum		args[2] = {Int64GetDatum(id), BoolGetDatum(full_refresh)};
		Oid			types[2] = {INT8OID, BOOLOID};

		/* find_sync locked the sync, so the run waits for this commit. */
		if (SPI_execute_with_args("INSERT INTO nango.sync_runs "
								  "(sync_id, full_refresh) VALUES ($1, true) "
								  "ON CONFLICT (sync_id) "
								  "WHERE status IN ('queued', 'running') "
								  "DO NOTHING RETURNING id",
								  2, types, args, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not queue a run");
		if (SPI_processed == 0)
		{
			if (SPI_execute_with_args("SELECT id FROM nango.sync_runs "
									  "WHERE sync_id = $1 "
									  "AND status IN ('queued', 'running')",
									  1, types, args, NULL, false, 1) != SPI_OK_SELECT ||
				SPI_processed != 1)
				elog(ERROR, "could not find the active run");
			ereport(NOTICE,
					(errmsg("sync \"%s\" already has a queued or running run",
							name)));
		}
		run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 1,
											 &isnull));
	}
	catalog_access_end(&access);
	SPI_finish();
	nango_wake_scheduler_at_commit();
	PG_RETURN_INT64(run_id);
}

/*
 * nango.wait_for_run: waits until a run has finished and returns its row.
 * Each look takes a fresh snapshot, so it needs READ COMMITTED, and the
 * run must have been committed, or no worker could ever see it.
 */
Datum
nango_wait_for_run(PG_FUNCTION_ARGS)
{
	int64		run_id;
	Interval   *timeout;
	TimestampTz deadline;
	Datum		arg[1];
	Oid			type[1] = {INT8OID};
	Datum		result = (Datum) 0;

	require_arg(fcinfo, 0, "run_id");
	require_arg(fcinfo, 1, "timeout");
	run_id = PG_GETARG_INT64(0);
	timeout = PG_GETARG_INTERVAL_P(1);
	arg[0] = Int64GetDatum(run_id);

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("nango.wait_for_run cannot wait in a %s transaction",
						XactIsoLevel == XACT_SERIALIZABLE ? "SERIALIZABLE" :
						"REPEATABLE READ"),
				 errdetail("Its snapshot would never show the run finish."),
				 errhint("Call it in a READ COMMITTED transaction.")));

	deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													   TimestampTzGetDatum(GetCurrentTimestamp()),
													   IntervalPGetDatum(timeout)));
	spi_begin();
	for (;;)
	{
		bool		isnull;
		bool		finished;
		TransactionId xmin;

		if (SPI_execute_with_args("SELECT r, r.status IN ('success', 'error'), "
								  "r.xmin FROM nango.sync_runs r WHERE r.id = $1",
								  1, type, arg, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read run " INT64_FORMAT, run_id);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("run %lld does not exist", (long long) run_id),
					 errhint("SELECT id, status FROM nango.sync_runs lists the runs of your syncs.")));
		finished = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 2, &isnull));
		xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 3,
												   &isnull));
		if (finished)
		{
			result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1,
													 &isnull), false, -1);
			break;
		}
		if (TransactionIdIsCurrentTransactionId(xmin))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("run %lld was queued by this transaction",
							(long long) run_id),
					 errdetail("No worker starts a run before it is committed."),
					 errhint("Commit, then call nango.wait_for_run.")));
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("run %lld did not finish in time", (long long) run_id),
					 errhint("Call nango.wait_for_run again, or with a longer "
							 "timeout; nango.sync_runs shows its progress.")));

		/* Each look's result would otherwise stay until SPI_finish. */
		SPI_freetuptable(SPI_tuptable);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * Called by the extension's script: asks the launcher, at commit, for a
 * scheduler in this database.
 */
Datum
nango_start_scheduler(PG_FUNCTION_ARGS)
{
	if (!nango_preloaded)
		ereport(WARNING,
				(errmsg("nango is not loaded through shared_preload_libraries"),
				 errdetail("No sync will run until it is."),
				 errhint("Add 'nango' to shared_preload_libraries in "
						 "postgresql.conf and restart the server.")));
	nango_wake_launcher_at_commit();
	PG_RETURN_VOID();
}
