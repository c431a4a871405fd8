/*
 * run.c
 *		A run worker: one execution of one sync, page after page.
 *
 * The worker holds its run's lock for as long as it lives, so the
 * scheduler can tell a run that is being worked on from one whose worker
 * died.  Each page is fetched with no transaction open, then written in
 * one short transaction together with the run's counters and checkpoint,
 * so a run that is interrupted at any point resumes from its last
 * committed page and the table never holds part of a page.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "http.h"
#include "nango.h"
#include "page.h"
#include "paging.h"
#include "sync_config.h"
#include "workers.h"
#include "writer.h"

typedef struct Run
{
	int64		id;
	SyncConfig *sync;
	PagingState state;
	bool		resumed;
	int			unsaved_requests;	/* HTTP requests not yet counted */
	bool		gone;			/* the sync was removed while running */
	char	   *search_path;	/* while the table is written */
	MemoryContext cxt;			/* lives as long as the run */
} Run;

/*
 * Opens one of the run's short transactions, with a snapshot and SPI.
 */
static void
run_xact_begin(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* Commits it, and goes back to cxt, which the commit does not free. */
static void
run_xact_commit(MemoryContext cxt)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}

/* Text of column col of the current SPI row, in the current context. */
static char *
spi_text(int col)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);
}

/* A text[] datum as a List of C strings, nulls left out. */
static List *
text_array_to_list(Datum array)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *result = NIL;

	deconstruct_array(DatumGetArrayTypeP(array), TEXTOID, -1, false,
					  TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			result = lappend(result, TextDatumGetCString(elems[i]));
	return result;
}

/*
 * Locks the sync of the run until commit, before the run's own row: the
 * order in which nango's SQL functions take the two, so that a run and a
 * call such as trigger_sync or remove_sync wait for each other rather than
 * deadlock.
 */
static void
lock_sync_of_run(int64 run_id)
{
	Datum		arg[1] = {Int64GetDatum(run_id)};
	Oid			argtype[1] = {INT8OID};

	if (SPI_execute_with_args("SELECT 1 FROM nango.syncs s "
							  "WHERE s.id = (SELECT r.sync_id "
							  "  FROM nango.sync_runs r WHERE r.id = $1) "
							  "FOR NO KEY UPDATE OF s",
							  1, argtype, arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the sync of run " INT64_FORMAT, run_id);
}

/*
 * Reads the run's sync from the current SPI row into run->sync, checking
 * it as add_sync did: a catalog row that no longer parses fails this run,
 * not the worker.
 */
static void
load_sync(Run *run)
{
	SyncConfig *sync = palloc0(sizeof(SyncConfig));
	TupleDesc	desc = SPI_tuptable->tupdesc;
	HeapTuple	tup = SPI_tuptable->vals[0];
	bool		isnull;
	char	   *text;

	sync->id = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	sync->name = spi_text(5);
	run->sync = sync;			/* names the run in errors from here on */
	sync->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
	sync->url = spi_text(7);
	sync->method = spi_text(8);
	sync->headers = sync_parse_name_values("headers", spi_text(9), true);
	sync->query_params = sync_parse_name_values("query_params", spi_text(10),
												false);
	sync->body = spi_text(11);
	sync->target_table = DatumGetObjectId(SPI_getbinval(tup, desc, 12,
														&isnull));
	sync->unique_key = text_array_to_list(SPI_getbinval(tup, desc, 13,
														&isnull));
	sync->response_path = spi_text(14);
	paging_parse(spi_text(15), &sync->paging);
	text = spi_text(16);
	sync->columns = text ? sync_parse_columns(text) : NIL;

	/*
	 * The table's triggers and defaults see pg_catalog first, then the
	 * table's own schema, whatever the owner's settings.
	 */
	{
		char	   *nspname = get_namespace_name(get_rel_namespace(sync->target_table));

		if (nspname == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("the target table of sync \"%s\" no longer exists",
							sync->name),
					 errhint("Remove the sync with nango.remove_sync('%s') and add it again.",
							 sync->name)));
		run->search_path = psprintf("pg_catalog, %s, pg_temp",
									quote_identifier(nspname));
	}

	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(sync->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("owner of sync \"%s\" no longer exists", sync->name),
				 errhint("Remove the sync, or add it again as another role.")));
}

/*
 * Takes the run: locks it against a second worker, loads its sync, marks
 * it running and, on a first start, sets when the sync is next due.
 * Returns false when there is nothing to do.
 */
static bool
begin_run(Run *run)
{
	LOCKTAG		tag;
	Datum		arg[1] = {Int64GetDatum(run->id)};
	Oid			argtype[1] = {INT8OID};
	char	   *status;
	char	   *checkpoint;
	int			resumes;
	bool		isnull;
	bool		paused;
	bool		proceed = true;

	run_xact_begin();
	nango_run_locktag(&tag, run->id);
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		run_xact_commit(run->cxt);
		return false;
	}

	lock_sync_of_run(run->id);
	if (SPI_execute_with_args("SELECT r.status, r.checkpoint::text, r.resumes, "
							  "s.id, s.name, s.owner::oid, s.url, s.method, "
							  "s.headers::text, s.query_params::text, "
							  "s.body::text, s.target_table::oid, "
							  "s.unique_key, s.response_path, s.paging::text, "
							  "s.columns::text, s.paused "
							  "FROM nango.sync_runs r "
							  "JOIN nango.syncs s ON s.id = r.sync_id "
							  "WHERE r.id = $1 FOR UPDATE OF r",
							  1, argtype, arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read run " INT64_FORMAT, run->id);

	if (SPI_processed == 0)
		proceed = false;
	else
	{
		MemoryContext spicxt = MemoryContextSwitchTo(run->cxt);

		status = spi_text(1);
		checkpoint = spi_text(2);
		resumes = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 3,
											  &isnull));
		paused = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 17,
											&isnull));
		if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0)
			proceed = false;
		else if (paused && strcmp(status, "queued") == 0)
			proceed = false;	/* paused after it was queued: it waits */
		else
		{
			/* Name the run in errors even if its sync fails to load. */
			load_sync(run);
			run->resumed = (strcmp(status, "running") == 0);
			/* jsonb gives it in the database's encoding; jansson reads UTF-8. */
			if (checkpoint != NULL && run->resumed)
				paging_state_from_json(pg_server_to_any(checkpoint,
														strlen(checkpoint),
														PG_UTF8),
									   &run->state);
			else
				paging_initial_state(&run->sync->paging, &run->state);
		}
		MemoryContextSwitchTo(spicxt);

		if (proceed && run->resumed && resumes >= NANGO_MAX_RESUMES)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("run was interrupted %d times and is given up",
							resumes + 1),
					 errhint("Look in the server log for what stopped it.")));
	}

	if (proceed)
	{
		if (SPI_execute_with_args("UPDATE nango.sync_runs SET "
								  "status = 'running', "
								  "started_at = coalesce(started_at, now()), "
								  "resumes = resumes + "
								  "  (status = 'running')::int "
								  "WHERE id = $1",
								  1, argtype, arg, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not mark run as running");
		if (!run->resumed &&
			SPI_execute_with_args("UPDATE nango.syncs s SET "
								  "next_run_at = now() + least(greatest(s.frequency, "
								  "interval '1 second'), interval '10 years') "
								  "FROM nango.sync_runs r "
								  "WHERE r.id = $1 AND s.id = r.sync_id",
								  1, argtype, arg, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not set the next run time");
	}

	run_xact_commit(run->cxt);
	return proceed;
}

/*
 * Writes one page and the checkpoint after it in one transaction.  The
 * table is written as the sync's owner, with a fixed search_path, so the
 * owner's privileges, row-level security and triggers apply.
 */
static void
write_page(Run *run, const HttpResponse *resp, const PageResult *page)
{
	MemoryContext pagecxt = CurrentMemoryContext;
	Datum		arg[1] = {Int64GetDatum(run->id)};
	Oid			argtype[1] = {INT8OID};
	Oid			save_user;
	int			save_sec;
	int			save_nestlevel;
	WriteCounts counts;
	char	   *checkpoint;

	run_xact_begin();
	if (SPI_execute_with_args("SELECT 1 FROM nango.sync_runs "
							  "WHERE id = $1 AND status = 'running' FOR UPDATE",
							  1, argtype, arg, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not lock run " INT64_FORMAT, run->id);
	if (SPI_processed == 0)
	{
		run->gone = true;
		run_xact_commit(pagecxt);
		return;
	}

	memset(&counts, 0, sizeof(counts));
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(run->sync->owner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", run->search_path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	writer_write_page(run->sync, run->id, (int) (run->state.pages + 1),
					  resp->body, page, &counts);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_user, save_sec);

	checkpoint = paging_state_to_json(&page->next);
	{
		Datum		values[8];
		Oid			types[8] = {INT8OID, INT8OID, INT8OID, INT8OID, INT8OID,
		INT8OID, INT4OID, TEXTOID};

		values[0] = Int64GetDatum(run->id);
		values[1] = Int64GetDatum(counts.records);
		values[2] = Int64GetDatum(counts.inserted);
		values[3] = Int64GetDatum(counts.updated);
		values[4] = Int64GetDatum(counts.unchanged);
		values[5] = Int64GetDatum(counts.rejected);
		values[6] = Int32GetDatum(run->unsaved_requests);
		values[7] = CStringGetTextDatum(checkpoint);
		if (SPI_execute_with_args("UPDATE nango.sync_runs SET "
								  "pages = pages + 1, records = records + $2, "
								  "inserted = inserted + $3, "
								  "updated = updated + $4, "
								  "unchanged = unchanged + $5, "
								  "rejected = rejected + $6, "
								  "http_requests = http_requests + $7, "
								  "checkpoint = $8::jsonb "
								  "WHERE id = $1",
								  8, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not save the checkpoint of run " INT64_FORMAT,
				 run->id);
	}

	run_xact_commit(pagecxt);
	run->unsaved_requests = 0;
}

/*
 * An error as text the database can store: an error may quote what the
 * API sent (a key, say), which is UTF-8; in a database of another
 * encoding, text that is not valid there has its non-ASCII bytes shown
 * as "?".
 */
static char *
run_error_text(const char *error)
{
	char	   *text = pstrdup(error);

	if (!pg_verify_mbstr(GetDatabaseEncoding(), text, strlen(text), true))
	{
		for (char *c = text; *c; c++)
			if (IS_HIGHBIT_SET(*c))
				*c = '?';
	}
	return text;
}

/*
 * Marks the run finished, with error NULL for success, trims the sync's
 * history to nango.run_history runs, and logs the run's counts.  The log
 * gets log_error, the error without its detail: a detail may quote the
 * response, which is for the sync's owner to read, not the server log.
 */
static void
finish_run(Run *run, const char *error, const char *log_error)
{
	Datum		values[3];
	Oid			types[3] = {INT8OID, INT4OID, TEXTOID};
	char		nulls[3] = {' ', ' ', error ? ' ' : 'n'};
	MemoryContext oldcxt = CurrentMemoryContext;

	if (error != NULL)
	{
		error = run_error_text(error);
		log_error = run_error_text(log_error);
	}
	values[0] = Int64GetDatum(run->id);
	values[1] = Int32GetDatum(run->unsaved_requests);
	values[2] = error ? CStringGetTextDatum(error) : (Datum) 0;

	run_xact_begin();
	lock_sync_of_run(run->id);
	if (SPI_execute_with_args("UPDATE nango.sync_runs SET "
							  "status = CASE WHEN $3 IS NULL THEN 'success' "
							  "  ELSE 'error' END, "
							  "finished_at = now(), error = $3, "
							  "started_at = coalesce(started_at, now()), "
							  "http_requests = http_requests + $2 "
							  "WHERE id = $1 AND status IN ('queued', 'running') "
							  "RETURNING pages, records, inserted, updated, "
							  "unchanged, rejected, http_requests, "
							  "round(extract(epoch FROM finished_at - "
							  "started_at), 1)::text, sync_id",
							  3, types, values, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not finish run " INT64_FORMAT, run->id);

	if (SPI_processed == 1)
	{
		const char *name = run->sync ? run->sync->name : "?";
		Datum		trim_values[2];
		Oid			trim_types[2] = {INT8OID, INT4OID};
		bool		isnull;
		char	   *counts;

		counts = psprintf("%s pages, %s records (%s inserted, %s updated, "
						  "%s unchanged, %s rejected), %s HTTP requests in %s s",
						  spi_text(1), spi_text(2), spi_text(3), spi_text(4),
						  spi_text(5), spi_text(6), spi_text(7), spi_text(8));
		if (error == NULL)
			ereport(LOG,
					(errmsg("nango run %lld of sync \"%s\" succeeded: %s",
							(long long) run->id, name, counts)));
		else
			ereport(LOG,
					(errmsg("nango run %lld of sync \"%s\" failed: %s: %s",
							(long long) run->id, name, counts, log_error)));
		trim_values[0] = SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 9, &isnull);
		trim_values[1] = Int32GetDatum(nango_run_history);

		/*
		 * A run that failed before it set the next run time (its sync did
		 * not load) sets it now: a failing sync waits its frequency instead
		 * of starting again at once.
		 */
		if (error != NULL &&
			SPI_execute_with_args("UPDATE nango.syncs SET "
								  "next_run_at = now() + least(greatest(frequency, "
								  "interval '1 second'), interval '10 years') "
								  "WHERE id = $1 AND (next_run_at IS NULL "
								  "  OR next_run_at <= now())",
								  1, trim_types, trim_values, NULL, false,
								  0) != SPI_OK_UPDATE)
			elog(ERROR, "could not set the next run time");

		if (SPI_execute_with_args("DELETE FROM nango.sync_runs "
								  "WHERE sync_id = $1 "
								  "AND status IN ('success', 'error') "
								  "AND id < (SELECT min(id) FROM "
								  "  (SELECT id FROM nango.sync_runs "
								  "   WHERE sync_id = $1 "
								  "   AND status IN ('success', 'error') "
								  "   ORDER BY id DESC LIMIT $2) newest)",
								  2, trim_types, trim_values, NULL, false,
								  0) != SPI_OK_DELETE)
			elog(ERROR, "could not trim the run history");
	}
	else
		ereport(LOG,
				(errmsg("nango run %lld stopped: its sync was removed",
						(long long) run->id)));

	run_xact_commit(oldcxt);
}

/* Reads every page of the run, from its checkpoint on. */
static void
run_pages(Run *run)
{
	MemoryContext pagecxt = AllocSetContextCreate(run->cxt, "nango page",
												  ALLOCSET_DEFAULT_SIZES);
	PageSeen   *seen = page_seen_create(run->cxt);

	if (run->resumed)
		ereport(LOG,
				(errmsg("nango run %lld of sync \"%s\" resumed after page %lld",
						(long long) run->id, run->sync->name,
						(long long) run->state.pages)));
	else
		ereport(LOG,
				(errmsg("nango run %lld of sync \"%s\" started",
						(long long) run->id, run->sync->name)));

	while (!run->state.done)
	{
		PageRequest req;
		HttpResponse resp;
		PageResult page;
		char	   *error = NULL;

		MemoryContextReset(pagecxt);
		MemoryContextSwitchTo(pagecxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		pgstat_report_activity(STATE_RUNNING,
								psprintf("nango sync \"%s\": run %lld, page %lld",
										 run->sync->name, (long long) run->id,
										 (long long) run->state.pages + 1));
		page_build_request(run->sync, &run->state, &req);
		run->unsaved_requests++;
		if (!http_fetch(run->sync->method, req.url, run->sync->headers,
						req.body, &resp, &error))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("request for page %lld failed: %s",
							(long long) run->state.pages + 1, error)));

		page_read_response(run->sync, &run->state, &resp, seen, &page);
		write_page(run, &resp, &page);
		if (run->gone)
			return;

		/* The checkpoint is committed; it is where the next page starts. */
		MemoryContextSwitchTo(run->cxt);
		if (run->state.next_url)
			pfree(run->state.next_url);
		if (run->state.token)
			pfree(run->state.token);
		run->state = page.next;
		if (run->state.next_url)
			run->state.next_url = pstrdup(run->state.next_url);
		if (run->state.token)
			run->state.token = pstrdup(run->state.token);
	}
}

/*
 * Entry point of a run worker.  Any ERROR of the run is caught, recorded
 * on the run and logged; the worker then exits.  A FATAL (SIGTERM,
 * postmaster death) leaves the run "running" for the scheduler to resume.
 */
void
nango_run_main(Datum main_arg)
{
	NangoRunArgs args;
	Run			run;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, StatementCancelHandler);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(args.dboid, InvalidOid, 0);
	nango_is_worker = true;
	pgstat_report_appname("nango run");

	memset(&run, 0, sizeof(run));
	run.id = args.run_id;
	run.cxt = AllocSetContextCreate(TopMemoryContext, "nango run",
									ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(run.cxt);

	PG_TRY();
	{
		if (begin_run(&run))
		{
			run_pages(&run);
			if (run.gone)
				ereport(LOG,
						(errmsg("nango run %lld stopped: its sync was removed",
								(long long) run.id)));
			else
				finish_run(&run, NULL, NULL);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(run.cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		MemoryContextSwitchTo(run.cxt);
		finish_run(&run, edata->detail ?
				   psprintf("%s\nDETAIL:  %s", edata->message, edata->detail) :
				   edata->message, edata->message);
	}
	PG_END_TRY();

	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
