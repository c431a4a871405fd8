/*
 * writer.c
 *		Writing a page of records into the sync's target table.
 *
 * A page is written by one set-based statement executed through SPI.  The
 * page's raw text goes to Postgres as a parameter and is cast to jsonb
 * there, so numbers keep every digit; each value reaches its column through
 * the column type's own input function.  The statement depends on the table
 * and on which record key feeds which column, so its text is built per page
 * and its plan is kept in a small cache keyed by that text.
 *
 * The statement is a chain of common table expressions:
 *
 *	rec: the records of the page, with a flag saying whether each is an
 *		 object with a value for every unique key column;
 *	src: one row per distinct key (the last record of the page wins), each
 *		 fed column's value cast to its type, and a flag per column saying
 *		 whether the record had the key at all;
 *	upd: updates the rows whose values differ, leaving a column whose key
 *		 was absent as it is, so an unchanged record makes no row version;
 *	ins: inserts the keys not in the table, an absent key taking the
 *		 column's default; ON CONFLICT covers a row inserted concurrently.
 *
 * If the statement fails on a data error (a cast, a constraint), the page
 * is written by halves, each in a subtransaction, down to single records;
 * those that fail alone are kept in nango.rejected_records with their
 * error.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "nango.h"
#include "page.h"
#include "writer.h"

/* Saved plans kept by one process; a run worker uses one or two a page. */
#define WRITER_PLAN_CACHE_SIZE	16

/* A saved plan and the statement text it was prepared from. */
typedef struct WriterPlan
{
	char	   *sql;			/* in TopMemoryContext; NULL: free slot */
	SPIPlanPtr	plan;
	uint64		last_used;
} WriterPlan;

static WriterPlan writer_plans[WRITER_PLAN_CACHE_SIZE];
static uint64 writer_plan_clock = 0;

/* How one column of the target table is fed from a record. */
typedef struct ColumnFeed
{
	char	   *column;			/* quoted column name */
	char	   *source;			/* jsonb expression over the record r.v */
	bool		is_key;			/* one of the unique key columns */
	bool		as_json;		/* json or jsonb: take the JSON value itself */
	char	   *key_eq;			/* key columns: the "=" to match rows with */
	bool		compare_native; /* equal values have equal text: compare as is */
	char	   *type_plain;		/* type name without typmod */
	char	   *type_full;		/* with typmod, or NULL when there is none */
	char	   *default_expr;	/* SQL for an absent key on insert */
	bool		overriding;		/* GENERATED ALWAYS AS IDENTITY */
} ColumnFeed;

/* How the target table is written for one page. */
typedef struct PageMapping
{
	char	   *table;			/* qualified, quoted name */
	bool		partitioned;
	List	   *feeds;			/* of ColumnFeed, in column order */
	char	   *key_names;		/* "id, number", for error messages */
} PageMapping;

/* What one execution of the statement did. */
typedef struct StatementResult
{
	int64		inserted;
	int64		updated;
	int64		written;		/* distinct valid records */
	List	   *invalid;		/* of char *: records the rec step rejects */
	List	   *invalid_errors; /* of char *: why, in the same order */
} StatementResult;

/* Where rejected records go, and how many of this run are stored. */
typedef struct RejectSink
{
	const SyncConfig *sync;
	int64		run_id;
	int			page_number;
	int64		kept;			/* rows of this run stored; -1 until read */
} RejectSink;

static bool writer_has_name(List *names, const char *name);
static Oid	writer_resolve_table(const char *target_table);
static void writer_check_privileges(Oid relid, const char *target_table);
static void writer_check_unique_key(Relation rel, const char *target_table,
									List *unique_key);
static bool writer_index_matches(Oid indexoid, Bitmapset *keys, int nkeys,
								 bool *deferrable);
static AttrNumber writer_check_column(Relation rel, const char *target_table,
									  const char *argname, const char *column);
static PageMapping *writer_map_columns(const SyncConfig *sync, Relation rel,
									   const PageResult *page);
static char *writer_feed_source(const SyncConfig *sync, const char *attname,
								List *record_keys, List *snake_keys);
static void writer_check_names(const SyncConfig *sync, TupleDesc desc);
static bool writer_desc_has(TupleDesc desc, const char *attname);
static char *writer_key_equality(Oid typid, const char *attname);
static bool writer_equality_is_identity(Form_pg_attribute att);
static char *writer_path_source(const char *path);
static char *writer_default_expr(Relation rel, Form_pg_attribute att,
								 const char *type_plain);
static void writer_append_records(StringInfo buf, PageMapping *map,
								  bool single_record);
static char *writer_build_statement(PageMapping *map, bool single_record);
static char *writer_build_extract(PageMapping *map, bool single_record);
static SPIPlanPtr writer_get_plan(const char *sql);
static Datum writer_path_array(List *path);
static bool writer_try_statement(SPIPlanPtr plan, Datum *values,
								 PageMapping *map, StatementResult *result,
								 char **error);
static void writer_read_result(PageMapping *map, StatementResult *result);
static bool writer_is_record_error(int sqlerrcode);
static char *writer_error_text(ErrorData *edata);
static void writer_reject(RejectSink *sink, const char *record,
						  const char *error, WriteCounts *counts);
static void writer_write_one_by_one(PageMapping *map, const char *body,
									const PageResult *page, RejectSink *sink,
									WriteCounts *counts);
static char *writer_to_server(const char *body, int page_number);
static void writer_write_range(SPIPlanPtr plan, PageMapping *map,
							   List *records, int first, int n,
							   RejectSink *sink, WriteCounts *counts);


/*
 * add_sync's check of its target: see writer.h.  Runs as the calling user
 * with the caller's search_path, so the table name means what it means in
 * the caller's own SQL.
 */
Oid
writer_check_target(const char *target_table, List *unique_key,
					List *columns)
{
	Oid			relid;
	Relation	rel;
	ListCell   *lc;

	relid = writer_resolve_table(target_table);
	writer_check_privileges(relid, target_table);

	rel = table_open(relid, AccessShareLock);
	writer_check_unique_key(rel, target_table, unique_key);

	foreach(lc, columns)
	{
		ColumnPath *cp = (ColumnPath *) lfirst(lc);
		AttrNumber	attnum;

		attnum = writer_check_column(rel, target_table, "columns",
									 cp->column);
		if (TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attidentity ==
			ATTRIBUTE_IDENTITY_ALWAYS &&
			!writer_has_name(unique_key, cp->column))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid columns: column \"%s\" of table \"%s\" is GENERATED ALWAYS AS IDENTITY",
							cp->column, target_table),
					 errhint("Leave it out of columns, or make it GENERATED BY DEFAULT AS IDENTITY.")));
	}

	table_close(rel, AccessShareLock);
	return relid;
}

/* Whether a List of char * holds name. */
static bool
writer_has_name(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
	{
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	}
	return false;
}

/*
 * Resolves target_table with the caller's search_path; it must be an
 * ordinary or a partitioned table.
 */
static Oid
writer_resolve_table(const char *target_table)
{
	char	   *rawname = pstrdup(target_table);
	List	   *parts = NIL;
	List	   *names = NIL;
	ListCell   *lc;
	RangeVar   *rv;
	Oid			relid;
	char		relkind;

	if (!SplitIdentifierString(rawname, '.', &parts) || parts == NIL ||
		list_length(parts) > 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid target_table: \"%s\" is not a table name",
						target_table),
				 errhint("Write the name as in SQL, such as issues or app.issues.")));
	foreach(lc, parts)
		names = lappend(names, makeString(pstrdup((char *) lfirst(lc))));

	rv = makeRangeVarFromNameList(names);
	relid = RangeVarGetRelid(rv, AccessShareLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("invalid target_table: table \"%s\" does not exist",
						target_table),
				 errhint("Create the table first, or qualify its name with its schema.")));

	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("invalid target_table: \"%s\" is not a table",
						target_table),
				 errhint("Give an ordinary or a partitioned table.")));
	if (IsCatalogRelationOid(relid) ||
		IsCatalogNamespace(get_rel_namespace(relid)) ||
		get_rel_namespace(relid) == get_namespace_oid("nango", true) ||
		isAnyTempNamespace(get_rel_namespace(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid target_table: \"%s\" belongs to the system, "
						"to nango or to a session", target_table),
				 errdetail("A sync writes only to permanent or unlogged tables "
						   "of the user's own schemas."),
				 errhint("Create a table of your own for the sync.")));
	return relid;
}

/*
 * The caller must be able to read, insert and update the whole table: a
 * run writes with these privileges, and reads the rows to skip unchanged
 * ones.  pg_class_aclcheck accepts any of several bits, so each is checked
 * alone.
 */
static void
writer_check_privileges(Oid relid, const char *target_table)
{
	static const struct
	{
		AclMode		mode;
		const char *name;
	}			needed[] = {
		{ACL_SELECT, "SELECT"},
		{ACL_INSERT, "INSERT"},
		{ACL_UPDATE, "UPDATE"},
	};

	for (int i = 0; i < lengthof(needed); i++)
	{
		if (pg_class_aclcheck(relid, GetUserId(),
							  needed[i].mode) != ACLCHECK_OK)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("invalid target_table: permission denied to %s table \"%s\"",
							needed[i].name, target_table),
					 errhint("A sync needs SELECT, INSERT and UPDATE on its "
							 "table; ask its owner to GRANT them.")));
	}
}

/*
 * unique_key must name existing columns, each once, and exactly the key
 * columns of the primary key or of a unique index without expressions or
 * predicate: that index is what ON CONFLICT arbitrates on.
 */
static void
writer_check_unique_key(Relation rel, const char *target_table,
						List *unique_key)
{
	Bitmapset  *keys = NULL;
	StringInfoData names;
	List	   *indexes;
	ListCell   *lc;
	bool		found = false;
	bool		deferrable = false;

	if (unique_key == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid unique_key: it names no column"),
				 errhint("Name the columns of the primary key of \"%s\", such as '{id}'.",
						 target_table)));

	initStringInfo(&names);
	foreach(lc, unique_key)
	{
		char	   *column = (char *) lfirst(lc);
		AttrNumber	attnum;

		attnum = writer_check_column(rel, target_table, "unique_key", column);
		if (bms_is_member(attnum, keys))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid unique_key: column \"%s\" is named twice",
							column),
					 errhint("Name each column of the key once.")));
		keys = bms_add_member(keys, attnum);
		appendStringInfo(&names, "%s%s", names.len > 0 ? ", " : "",
						 quote_identifier(column));
	}

	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		bool		index_deferrable = false;

		if (writer_index_matches(lfirst_oid(lc), keys,
								 list_length(unique_key), &index_deferrable))
		{
			if (!index_deferrable)
				found = true;
			deferrable |= index_deferrable;
		}
	}
	list_free(indexes);

	if (!found && deferrable)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid unique_key: the unique constraint on (%s) of table \"%s\" is deferrable",
						names.data, target_table),
				 errdetail("Rows are upserted with ON CONFLICT, which cannot use a deferrable constraint."),
				 errhint("Make the constraint NOT DEFERRABLE, or create a unique index on %s (%s).",
						 target_table, names.data)));
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid unique_key: (%s) is neither the primary "
						"key nor a unique index of table \"%s\"",
						names.data, target_table),
				 errhint("Create a unique index on %s (%s), or name the primary key columns.",
						 target_table, names.data)));
}

/*
 * Whether the index is a valid unique index whose key columns are exactly
 * the attribute numbers in keys, with no expression and no predicate.
 * *deferrable says whether it is a deferrable constraint's index.
 */
static bool
writer_index_matches(Oid indexoid, Bitmapset *keys, int nkeys,
					 bool *deferrable)
{
	HeapTuple	tuple;
	Form_pg_index index;
	bool		matches;

	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(indexoid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for index %u", indexoid);
	index = (Form_pg_index) GETSTRUCT(tuple);

	matches = index->indisunique && index->indisvalid && index->indislive &&
		!index->indisexclusion && index->indnkeyatts == nkeys &&
		heap_attisnull(tuple, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(tuple, Anum_pg_index_indpred, NULL);
	for (int i = 0; matches && i < index->indnkeyatts; i++)
		matches = bms_is_member(index->indkey.values[i], keys);
	*deferrable = !index->indimmediate;

	ReleaseSysCache(tuple);
	return matches;
}

/*
 * A column named in argname must exist, not be a system column and not be
 * generated.  Returns its attribute number.
 */
static AttrNumber
writer_check_column(Relation rel, const char *target_table,
					const char *argname, const char *column)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), column);

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("invalid %s: column \"%s\" of table \"%s\" does not exist",
						argname, column, target_table),
				 errhint("Name columns of the table exactly, case included.")));
	if (TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attgenerated)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: column \"%s\" of table \"%s\" is a generated column",
						argname, column, target_table),
				 errhint("Name columns that records can write.")));
	return attnum;
}

/*
 * Writes the records of one page: see writer.h.  counts is set, not added
 * to.
 */
void
writer_write_page(const SyncConfig *sync, int64 run_id, int page_number,
				  const char *body, const PageResult *page,
				  WriteCounts *counts)
{
	Relation	rel;
	PageMapping *map;
	SPIPlanPtr	plan;
	Datum		values[2];
	StatementResult result;
	RejectSink	sink = {sync, run_id, page_number, -1};
	char	   *error;
	ListCell   *lc1;
	ListCell   *lc2;

	memset(counts, 0, sizeof(WriteCounts));
	if (page->nrecords == 0)
		return;

	/*
	 * The page is UTF-8 (jansson checked it); the database may not be.  A
	 * character the database's encoding cannot hold fails the page rather
	 * than landing as other characters.
	 */
	body = writer_to_server(body, page_number);

	rel = try_relation_open(sync->target_table, RowExclusiveLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("the target table of sync \"%s\" no longer exists",
						sync->name),
				 errhint("Remove the sync with nango.remove_sync('%s') and add it again.",
						 sync->name)));
	map = writer_map_columns(sync, rel, page);
	relation_close(rel, NoLock);

	plan = writer_get_plan(writer_build_statement(map, page->single_record));
	values[0] = CStringGetTextDatum(body);
	values[1] = writer_path_array(page->records_path);

	if (!writer_try_statement(plan, values, map, &result, &error))
	{
		ereport(DEBUG1,
				(errmsg_internal("sync \"%s\": page %d written record by record: %s",
								 sync->name, page_number, error)));
		writer_write_one_by_one(map, body, page, &sink, counts);
		return;
	}

	counts->records = result.written + list_length(result.invalid);
	counts->inserted = result.inserted;
	counts->updated = result.updated;
	counts->unchanged = result.written - result.inserted - result.updated;
	forboth(lc1, result.invalid, lc2, result.invalid_errors)
		writer_reject(&sink, lfirst(lc1), lfirst(lc2), counts);
}

/*
 * The page's text in the database's encoding.  A character the encoding
 * cannot hold fails the page with an error that says which page and why.
 */
static char *
writer_to_server(const char *body, int page_number)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile result = NULL;

	/* jansson has checked that the page is valid UTF-8: nothing to do. */
	if (GetDatabaseEncoding() == PG_UTF8)
		return unconstify(char *, body);

	PG_TRY();
	{
		result = pg_any_to_server(body, strlen(body), PG_UTF8);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_UNTRANSLATABLE_CHARACTER)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_UNTRANSLATABLE_CHARACTER),
				 errmsg("page %d holds a character that the database's encoding %s cannot hold",
						page_number, GetDatabaseEncodingName()),
				 errdetail("%s.", edata->message),
				 errhint("Sync into a database created with ENCODING 'UTF8'.")));
	}
	PG_END_TRY();
	return result;
}

/*
 * Decides which column each record key feeds for this page.  A column
 * takes, in order: its entry in the sync's columns; the record key of its
 * name; a key whose snake_case form is its name.  Columns fed by nothing
 * are left out of the statement, except the unique key columns, which are
 * always read (records without them are rejected).
 */
static PageMapping *
writer_map_columns(const SyncConfig *sync, Relation rel,
				   const PageResult *page)
{
	PageMapping *map = palloc0(sizeof(PageMapping));
	TupleDesc	desc = RelationGetDescr(rel);
	StringInfoData keys;
	char	   *nspname;
	List	   *record_keys = NIL;
	List	   *snake_keys = NIL;
	ListCell   *lc;

	nspname = get_namespace_name(RelationGetNamespace(rel));
	map->table = quote_qualified_identifier(nspname,
											RelationGetRelationName(rel));
	map->partitioned = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;

	/*
	 * Each key in the database's encoding, as column names are, and its
	 * snake_case form, worked out once for the page.
	 */
	foreach(lc, page->record_keys)
	{
		char	   *key = lfirst(lc);

		key = pg_any_to_server(key, strlen(key), PG_UTF8);
		record_keys = lappend(record_keys, key);
		snake_keys = lappend(snake_keys, page_snake_case(key));
	}

	initStringInfo(&keys);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *attname = NameStr(att->attname);
		ColumnFeed *feed;
		bool		is_key;
		char	   *source;
		Oid			base;

		if (att->attisdropped || att->attgenerated)
			continue;
		is_key = writer_has_name(sync->unique_key, attname);
		if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS && !is_key)
			continue;

		source = writer_feed_source(sync, attname, record_keys, snake_keys);
		if (source == NULL && !is_key)
			continue;

		feed = palloc0(sizeof(ColumnFeed));
		feed->column = pstrdup(quote_identifier(attname));
		feed->source = source ? source : "CAST(NULL AS pg_catalog.jsonb)";
		feed->is_key = is_key;
		base = getBaseType(att->atttypid);
		feed->as_json = (base == JSONOID || base == JSONBOID);
		if (is_key)
			feed->key_eq = writer_key_equality(att->atttypid, attname);
		feed->compare_native = writer_equality_is_identity(att);
		feed->type_plain = format_type_extended(att->atttypid, -1,
												FORMAT_TYPE_TYPEMOD_GIVEN |
												FORMAT_TYPE_FORCE_QUALIFY);
		if (att->atttypmod >= 0)
			feed->type_full = format_type_extended(att->atttypid,
												   att->atttypmod,
												   FORMAT_TYPE_TYPEMOD_GIVEN |
												   FORMAT_TYPE_FORCE_QUALIFY);
		feed->default_expr = writer_default_expr(rel, att, feed->type_plain);
		feed->overriding = att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS;
		map->feeds = lappend(map->feeds, feed);

		if (is_key)
			appendStringInfo(&keys, "%s%s", keys.len > 0 ? ", " : "", attname);
	}
	map->key_names = keys.data;
	writer_check_names(sync, desc);
	return map;
}

/*
 * Fails the run when a column the sync names (in unique_key or columns)
 * is no longer in the table, say after ALTER TABLE ... RENAME COLUMN,
 * rather than leaving that column unfed without a word.
 */
static void
writer_check_names(const SyncConfig *sync, TupleDesc desc)
{
	ListCell   *lc;

	foreach(lc, sync->unique_key)
		if (!writer_desc_has(desc, (char *) lfirst(lc)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("unique_key column \"%s\" of sync \"%s\" is no longer in its table",
							(char *) lfirst(lc), sync->name),
					 errhint("Remove the sync and add it again with the "
							 "table's columns.")));
	foreach(lc, sync->columns)
	{
		ColumnPath *cp = (ColumnPath *) lfirst(lc);

		if (!writer_desc_has(desc, cp->column))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" named in the columns of sync \"%s\" is no longer in its table",
							cp->column, sync->name),
					 errhint("Remove the sync and add it again with the "
							 "table's columns.")));
	}
}

static bool
writer_desc_has(TupleDesc desc, const char *attname)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), attname) == 0)
			return true;
	}
	return false;
}

/*
 * True for the built-in types whose "=" holds only for values written
 * alike (integers, booleans, dates and times, uuid, and strings under a
 * deterministic collation), which can be compared as they are; others
 * (numeric, floats, jsonb, intervals, ...) are compared as text.
 */
static bool
writer_equality_is_identity(Form_pg_attribute att)
{
	switch (att->atttypid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case BOOLOID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case UUIDOID:
			return true;
		case TEXTOID:
		case VARCHAROID:
			return !OidIsValid(att->attcollation) ||
				get_collation_isdeterministic(att->attcollation);
		default:
			return false;
	}
}

/*
 * The operator that matches a key column's rows: plain "=" for a type
 * whose equality lives in pg_catalog, else OPERATOR(schema.=), since a
 * run's search_path holds only pg_catalog and the table's schema.
 */
static char *
writer_key_equality(Oid typid, const char *attname)
{
	Oid			eq = lookup_type_cache(typid, TYPECACHE_EQ_OPR)->eq_opr;
	HeapTuple	tup;
	Oid			nsp;
	char	   *result;

	if (!OidIsValid(eq))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("unique_key column \"%s\" has a type without equality",
						attname)));
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(eq));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", eq);
	nsp = ((Form_pg_operator) GETSTRUCT(tup))->oprnamespace;
	ReleaseSysCache(tup);
	if (nsp == PG_CATALOG_NAMESPACE)
		return "=";
	result = psprintf("OPERATOR(%s.=)", quote_identifier(get_namespace_name(nsp)));
	return result;
}

/*
 * The jsonb expression over the record r.v that feeds column attname, or
 * NULL when nothing in this page feeds it: its entry in the sync's columns,
 * else the record's key of its name or, for a record without that key,
 * the first key whose snake_case form is its name.  The choice is made per
 * record, since records of one page may spell a key differently.
 */
static char *
writer_feed_source(const SyncConfig *sync, const char *attname,
				   List *record_keys, List *snake_keys)
{
	ListCell   *lc;
	ListCell   *lc2;
	StringInfoData buf;
	int			candidates = 0;

	foreach(lc, sync->columns)
	{
		ColumnPath *cp = (ColumnPath *) lfirst(lc);

		if (strcmp(cp->column, attname) == 0)
			return writer_path_source(cp->path);
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf, "COALESCE(");
	foreach(lc, record_keys)
	{
		if (strcmp((char *) lfirst(lc), attname) == 0)
			appendStringInfo(&buf, "%sr.v -> %s", candidates++ ? ", " : "",
							 quote_literal_cstr(attname));
	}
	forboth(lc, record_keys, lc2, snake_keys)
	{
		char	   *key = (char *) lfirst(lc);

		if (strcmp(key, attname) != 0 &&
			strcmp((char *) lfirst(lc2), attname) == 0)
			appendStringInfo(&buf, "%sr.v -> %s", candidates++ ? ", " : "",
							 quote_literal_cstr(key));
	}
	appendStringInfoChar(&buf, ')');
	return candidates > 0 ? buf.data : NULL;
}

/*
 * The jsonb expression for a dotted path of the columns argument: "$" is
 * the record itself; otherwise #> with the segments, where jsonb reads a
 * segment as an array index when the value there is an array.
 */
static char *
writer_path_source(const char *path)
{
	StringInfoData buf;
	List	   *segments;
	ListCell   *lc;

	if (strcmp(path, "$") == 0)
		return "r.v";

	segments = sync_path_segments(path);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "(r.v #> ARRAY[");
	foreach(lc, segments)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 quote_literal_cstr((char *) lfirst(lc)));
	appendStringInfoString(&buf, "]::pg_catalog.text[])");
	return buf.data;
}

/*
 * What an absent key writes on insert: the column's default as SQL text,
 * or NULL.  An identity column's default is its sequence's next value;
 * the deparsed form of that is not valid SQL, so it is spelled out here.
 */
static char *
writer_default_expr(Relation rel, Form_pg_attribute att,
					const char *type_plain)
{
	Node	   *expr;

	if (att->attidentity)
	{
		Oid			seq = getIdentitySequence(RelationGetRelid(rel),
											  att->attnum, false);
		char	   *nspname = get_namespace_name(get_rel_namespace(seq));
		char	   *seqname;

		seqname = quote_qualified_identifier(nspname, get_rel_name(seq));
		return psprintf("CAST(pg_catalog.nextval(CAST(%s AS pg_catalog.regclass)) AS %s)",
						quote_literal_cstr(seqname), type_plain);
	}

	expr = build_column_default(rel, att->attnum);
	if (expr == NULL)
		return "NULL";
	return psprintf("(%s)", deparse_expression(expr, NIL, false, false));
}

/*
 * Appends the rec step: the page's records with their ordinal and a flag
 * ok, true when a record is an object with a non-null value for every key
 * column.
 */
static void
writer_append_records(StringInfo buf, PageMapping *map, bool single_record)
{
	ListCell   *lc;

	appendStringInfoString(buf,
						   "rec AS MATERIALIZED (\n"
						   "  SELECT r.v, r.ord, coalesce(jsonb_typeof(r.v) = 'object'");
	foreach(lc, map->feeds)
	{
		ColumnFeed *feed = (ColumnFeed *) lfirst(lc);

		if (feed->is_key)
			appendStringInfo(buf,
							 "\n      AND coalesce(jsonb_typeof(%s), 'null') <> 'null'",
							 feed->source);
	}
	appendStringInfoString(buf, ", false) AS ok\n");
	if (single_record)
		appendStringInfoString(buf,
							   "  FROM (SELECT coalesce(CAST($1 AS pg_catalog.jsonb) #> $2,"
							   " 'null') AS v, CAST(1 AS bigint) AS ord) AS r\n)");
	else
		appendStringInfoString(buf,
							   "  FROM jsonb_array_elements(CAST($1 AS pg_catalog.jsonb) #> $2)"
							   " WITH ORDINALITY AS r(v, ord)\n)");
}

/*
 * Builds the page statement (see the comment at the top of this file).
 * src names the value of the i-th fed column ci and its presence flag pi.
 * Its result has one row per record rejected by rec, or one row when there
 * is none: inserted, updated, written, the record (NULL when none) and
 * whether it is an object.
 */
static char *
writer_build_statement(PageMapping *map, bool single_record)
{
	StringInfoData buf;
	StringInfoData keymatch;	/* t.key = s.cK AND ... */
	StringInfoData conflict;	/* s2.cK = excluded.key AND ... */
	StringInfoData keyorder;	/* cK, ... */
	StringInfoData keycols;		/* key, ... */
	StringInfoData setlist;
	StringInfoData changed;
	StringInfoData insnames;
	StringInfoData insvalues;
	StringInfoData raceset;
	bool		overriding = false;
	int			i;
	ListCell   *lc;

	initStringInfo(&keymatch);
	initStringInfo(&conflict);
	initStringInfo(&keyorder);
	initStringInfo(&keycols);
	initStringInfo(&setlist);
	initStringInfo(&changed);
	initStringInfo(&insnames);
	initStringInfo(&insvalues);
	initStringInfo(&raceset);

	/* The key columns first: the other pieces match rows on them. */
	i = 0;
	foreach(lc, map->feeds)
	{
		ColumnFeed *feed = (ColumnFeed *) lfirst(lc);

		i++;
		if (!feed->is_key)
			continue;
		appendStringInfo(&keymatch, "%st.%s %s s.c%d",
						 keymatch.len > 0 ? " AND " : "", feed->column,
						 feed->key_eq, i);
		appendStringInfo(&conflict, "%ss2.c%d %s excluded.%s",
						 conflict.len > 0 ? " AND " : "", i, feed->key_eq,
						 feed->column);
		appendStringInfo(&keyorder, "%sc%d", keyorder.len > 0 ? ", " : "", i);
		appendStringInfo(&keycols, "%s%s", keycols.len > 0 ? ", " : "",
						 feed->column);
	}

	/* Then the pieces of upd and ins, one column at a time. */
	i = 0;
	foreach(lc, map->feeds)
	{
		ColumnFeed *feed = (ColumnFeed *) lfirst(lc);
		char	   *newval;
		char	   *oldval;

		i++;
		appendStringInfo(&insnames, "%s%s", i > 1 ? ", " : "", feed->column);
		overriding |= feed->overriding;
		if (feed->is_key)
		{
			appendStringInfo(&insvalues, "%s\n    s.c%d", i > 1 ? "," : "", i);
			continue;
		}

		appendStringInfo(&insvalues,
						 "%s\n    CASE WHEN s.p%d THEN s.c%d ELSE %s END",
						 i > 1 ? "," : "", i, i, feed->default_expr);
		appendStringInfo(&setlist,
						 "%s\n    %s = CASE WHEN s.p%d THEN s.c%d ELSE t.%s END",
						 setlist.len > 0 ? "," : "", feed->column, i, i,
						 feed->column);
		appendStringInfo(&raceset,
						 "%s\n    %s = CASE WHEN (SELECT s2.p%d FROM src AS s2 WHERE %s)"
						 " THEN excluded.%s ELSE t.%s END",
						 raceset.len > 0 ? "," : "", feed->column, i,
						 conflict.data, feed->column, feed->column);

		/*
		 * The typmod is applied by the assignment; compare with it too.
		 * Values are compared as text, unless the type's equality means
		 * identical text: a change the type's equality calls no change
		 * (1.0 and 1.00, a case-blind collation) is still one, and no
		 * operator outside pg_catalog is needed.
		 */
		newval = feed->type_full
			? psprintf("CAST(s.c%d AS %s)", i, feed->type_full)
			: psprintf("s.c%d", i);
		oldval = psprintf("t.%s", feed->column);
		if (!feed->compare_native)
		{
			newval = psprintf("CAST(%s AS pg_catalog.text)", newval);
			oldval = psprintf("CAST(%s AS pg_catalog.text)", oldval);
		}
		appendStringInfo(&changed, "%s\n      (s.p%d AND %s IS DISTINCT FROM %s)",
						 changed.len > 0 ? " OR" : "", i, newval, oldval);
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf, "WITH ");
	writer_append_records(&buf, map, single_record);

	/* src: one row per key, the last record of the page winning. */
	appendStringInfo(&buf,
					 ",\nsrc AS MATERIALIZED (\n"
					 "  SELECT DISTINCT ON (%s) * FROM (\n"
					 "  SELECT r.ord",
					 keyorder.data);
	i = 0;
	foreach(lc, map->feeds)
	{
		ColumnFeed *feed = (ColumnFeed *) lfirst(lc);

		i++;
		if (feed->as_json)
			appendStringInfo(&buf,
							 ",\n    CAST(NULLIF(%s, 'null') AS %s) AS c%d",
							 feed->source, feed->type_plain, i);
		else
			appendStringInfo(&buf,
							 ",\n    CAST(%s #>> '{}' AS %s) AS c%d",
							 feed->source, feed->type_plain, i);
		appendStringInfo(&buf, ", %s IS NOT NULL AS p%d", feed->source, i);
	}
	appendStringInfo(&buf,
					 "\n  FROM rec AS r WHERE r.ok) AS x\n"
					 "  ORDER BY %s, ord DESC\n)",
					 keyorder.data);

	/* upd: rows whose fed values differ, absent keys keeping theirs. */
	if (setlist.len > 0)
		appendStringInfo(&buf,
						 ",\nupd AS (\n"
						 "  UPDATE %s AS t SET%s\n"
						 "  FROM src AS s\n"
						 "  WHERE %s AND (%s)\n"
						 "  RETURNING 1\n)",
						 map->table, setlist.data, keymatch.data, changed.data);

	/*
	 * ins: keys not in the table.  A row another session inserts meanwhile
	 * is updated instead, reading presence from src; xmax tells which
	 * happened, except on a partitioned table, where it cannot be read.
	 */
	appendStringInfo(&buf,
					 ",\nins AS (\n"
					 "  INSERT INTO %s AS t (%s)%s\n"
					 "  SELECT%s\n"
					 "  FROM src AS s\n"
					 "  WHERE NOT EXISTS (SELECT 1 FROM %s AS t WHERE %s)\n",
					 map->table, insnames.data,
					 overriding ? " OVERRIDING SYSTEM VALUE" : "",
					 insvalues.data, map->table, keymatch.data);
	if (raceset.len > 0)
		appendStringInfo(&buf, "  ON CONFLICT (%s) DO UPDATE SET%s\n",
						 keycols.data, raceset.data);
	else
		appendStringInfoString(&buf, "  ON CONFLICT DO NOTHING\n");
	appendStringInfo(&buf, "  RETURNING %s AS fresh\n)\n",
					 map->partitioned ? "true" : "t.xmax = 0");

	appendStringInfo(&buf,
					 "SELECT (SELECT count(*) FROM ins WHERE fresh),\n"
					 "  %s(SELECT count(*) FROM ins WHERE NOT fresh),\n"
					 "  (SELECT count(*) FROM src),\n"
					 "  CAST(b.v AS pg_catalog.text), jsonb_typeof(b.v) = 'object'\n"
					 "FROM (VALUES (1)) AS one(x) LEFT JOIN rec AS b ON NOT b.ok\n"
					 "ORDER BY b.ord",
					 setlist.len > 0 ? "(SELECT count(*) FROM upd) + " : "");
	return buf.data;
}

/*
 * Builds the statement that lists a page's records for writing them one
 * by one: the valid ones deduplicated on their key values as JSON (the
 * last wins), then those rec rejects, each as text, in page order.
 */
static char *
writer_build_extract(PageMapping *map, bool single_record)
{
	StringInfoData buf;
	StringInfoData keys;
	ListCell   *lc;

	initStringInfo(&keys);
	foreach(lc, map->feeds)
	{
		ColumnFeed *feed = (ColumnFeed *) lfirst(lc);

		if (feed->is_key)
			appendStringInfo(&keys, "%s%s", keys.len > 0 ? ", " : "",
							 feed->source);
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf, "WITH ");
	writer_append_records(&buf, map, single_record);
	appendStringInfo(&buf,
					 "\nSELECT CAST(d.v AS pg_catalog.text) AS record, d.ord FROM (\n"
					 "  SELECT DISTINCT ON (%s) r.v, r.ord FROM rec AS r WHERE r.ok\n"
					 "  ORDER BY %s, r.ord DESC) AS d\n"
					 "UNION ALL\n"
					 "SELECT CAST(r.v AS pg_catalog.text), r.ord FROM rec AS r WHERE NOT r.ok\n"
					 "ORDER BY ord",
					 keys.data, keys.data);
	return buf.data;
}

/*
 * The saved plan for sql, prepared on first use.  The cache is bounded:
 * when full, the least recently used plan is freed.  Plans are invalidated
 * by Postgres when the table changes; a changed column type changes the
 * text, and with it the entry.
 */
static SPIPlanPtr
writer_get_plan(const char *sql)
{
	static const Oid argtypes[2] = {TEXTOID, TEXTARRAYOID};
	WriterPlan *slot = &writer_plans[0];
	SPIPlanPtr	plan;

	for (int i = 0; i < WRITER_PLAN_CACHE_SIZE; i++)
	{
		WriterPlan *entry = &writer_plans[i];

		if (entry->sql != NULL && strcmp(entry->sql, sql) == 0)
		{
			entry->last_used = ++writer_plan_clock;
			return entry->plan;
		}
		if (entry->sql == NULL ||
			(slot->sql != NULL && entry->last_used < slot->last_used))
			slot = entry;
	}

	plan = SPI_prepare(sql, 2, (Oid *) argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare the statement writing a page: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not save the statement writing a page");

	if (slot->sql != NULL)
	{
		SPI_freeplan(slot->plan);
		pfree(slot->sql);
		slot->sql = NULL;
	}
	slot->sql = MemoryContextStrdup(TopMemoryContext, sql);
	slot->plan = plan;
	slot->last_used = ++writer_plan_clock;
	return plan;
}

/*
 * The records path as a text[] Datum, in the database's encoding; an empty
 * path is the whole body.
 */
static Datum
writer_path_array(List *path)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(path), 1));
	ListCell   *lc;

	/* Keys found in the page are UTF-8, as the page was. */
	foreach(lc, path)
	{
		char	   *key = lfirst(lc);

		elems[foreach_current_index(lc)] =
			CStringGetTextDatum(pg_any_to_server(key, strlen(key), PG_UTF8));
	}
	return PointerGetDatum(construct_array(elems, list_length(path), TEXTOID,
										   -1, false, TYPALIGN_INT));
}

/*
 * Executes plan in a subtransaction, as PL/pgSQL does for a block with an
 * exception handler.  Returns true with *result filled when it succeeded;
 * false with *error set when it failed on a data error, the subtransaction
 * rolled back.  Any other error (a cancel, a shutdown, a deadlock) is
 * re-thrown: it is not the records' fault.
 */
static bool
writer_try_statement(SPIPlanPtr plan, Datum *values, PageMapping *map,
					 StatementResult *result, char **error)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	memset(result, 0, sizeof(StatementResult));
	*error = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);

	PG_TRY();
	{
		int			rc = SPI_execute_plan(plan, values, NULL, false, 0);

		MemoryContextSwitchTo(oldcontext);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "the statement writing a page returned %s",
				 SPI_result_code_string(rc));
		writer_read_result(map, result);
		/* Copied out: free it now, not with a page's worth at SPI_finish. */
		SPI_freetuptable(SPI_tuptable);

		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();

		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		if (!writer_is_record_error(edata->sqlerrcode))
			ReThrowError(edata);
		*error = writer_error_text(edata);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();

	return ok;
}

/*
 * Reads the page statement's result (see writer_build_statement) into
 * result, in the current memory context.
 */
static void
writer_read_result(PageMapping *map, StatementResult *result)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;

	for (uint64 row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[row];
		bool		isnull;
		char	   *record;

		if (row == 0)
		{
			result->inserted =
				DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
			result->updated =
				DatumGetInt64(SPI_getbinval(tuple, desc, 2, &isnull));
			result->written =
				DatumGetInt64(SPI_getbinval(tuple, desc, 3, &isnull));
		}
		record = SPI_getvalue(tuple, desc, 4);
		if (record == NULL)
			continue;
		result->invalid = lappend(result->invalid, record);
		if (DatumGetBool(SPI_getbinval(tuple, desc, 5, &isnull)))
			result->invalid_errors =
				lappend(result->invalid_errors,
						psprintf("record has no value for its unique key (%s)",
								 map->key_names));
		else
			result->invalid_errors = lappend(result->invalid_errors,
											 "record is not a JSON object");
	}
}

/*
 * Whether an error belongs to the record being written, rather than to the
 * server or the session: bad values (class 22), constraints (23), a view's
 * check option (44), an index row too large (54), a trigger's RAISE.
 */
static bool
writer_is_record_error(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_DATA_EXCEPTION:
		case ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION:
		case ERRCODE_WITH_CHECK_OPTION_VIOLATION:
		case ERRCODE_PROGRAM_LIMIT_EXCEEDED:
			return true;
		default:
			return sqlerrcode == ERRCODE_RAISE_EXCEPTION;
	}
}

/* An error's message, and its detail when it has one. */
static char *
writer_error_text(ErrorData *edata)
{
	if (edata->detail != NULL)
		return psprintf("%s\nDETAIL:  %s", edata->message, edata->detail);
	return pstrdup(edata->message);
}

/*
 * Counts a rejected record and stores it in nango.rejected_records, unless
 * this run already stored NANGO_MAX_REJECTED_KEPT.  Only the extension's
 * owner may write that table, so the insert runs as the owner of the
 * table; the caller's identity is restored afterwards.
 */
static void
writer_reject(RejectSink *sink, const char *record, const char *error,
			  WriteCounts *counts)
{
	Oid			nspid;
	Oid			relid;
	HeapTuple	tuple;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;

	counts->rejected++;
	if (sink->kept >= NANGO_MAX_REJECTED_KEPT)
		return;

	nspid = get_namespace_oid("nango", false);
	relid = get_relname_relid("rejected_records", nspid);
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for nango.rejected_records");
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		Datum		values[5];
		Oid			types[5] = {INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID};
		bool		isnull;

		values[0] = Int64GetDatum(sink->run_id);
		if (sink->kept < 0)
		{
			if (SPI_execute_with_args("SELECT count(*) FROM nango.rejected_records "
									  "WHERE run_id = $1",
									  1, types, values, NULL,
									  false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not count the rejected records of run "
					 INT64_FORMAT, sink->run_id);
			sink->kept = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc,
													 1, &isnull));
		}
		if (sink->kept < NANGO_MAX_REJECTED_KEPT)
		{
			values[1] = Int64GetDatum(sink->sync->id);
			values[2] = Int32GetDatum(sink->page_number);
			values[3] = CStringGetTextDatum(record);
			values[4] = CStringGetTextDatum(error);
			if (SPI_execute_with_args("INSERT INTO nango.rejected_records "
									  "(run_id, sync_id, page, record, error) "
									  "VALUES ($1, $2, $3, CAST($4 AS pg_catalog.jsonb), $5)",
									  5, types, values, NULL,
									  false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not store a rejected record of run "
					 INT64_FORMAT, sink->run_id);
			sink->kept++;
		}
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

/*
 * The page statement failed: writes the distinct records of the page in
 * page order, halving the page until each part either is written or is
 * one record, which is rejected.  A page with one bad record takes about
 * 2 log2(n) statements, each in a subtransaction, rather than one a record.
 */
static void
writer_write_one_by_one(PageMapping *map, const char *body,
						const PageResult *page, RejectSink *sink,
						WriteCounts *counts)
{
	SPIPlanPtr	extract;
	Datum		values[2];
	List	   *records = NIL;
	int			rc;

	extract = writer_get_plan(writer_build_extract(map, page->single_record));
	values[0] = CStringGetTextDatum(body);
	values[1] = writer_path_array(page->records_path);
	rc = SPI_execute_plan(extract, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list the records of a page: %s",
			 SPI_result_code_string(rc));
	for (uint64 row = 0; row < SPI_processed; row++)
		records = lappend(records, SPI_getvalue(SPI_tuptable->vals[row],
												SPI_tuptable->tupdesc, 1));
	SPI_freetuptable(SPI_tuptable);

	counts->records = list_length(records);
	if (records != NIL)
		writer_write_range(writer_get_plan(writer_build_statement(map, false)),
						   map, records, 0, list_length(records), sink,
						   counts);
}

/*
 * Writes records first .. first + n - 1, as a page of their own (a JSON
 * array of them), with plan, the statement's array form.  When that fails
 * on a record's data, writes each half the same way; a single record that
 * fails is rejected.
 */
static void
writer_write_range(SPIPlanPtr plan, PageMapping *map, List *records,
				   int first, int n, RejectSink *sink, WriteCounts *counts)
{
	StringInfoData part;
	Datum		values[2];
	StatementResult result;
	char	   *error;
	ListCell   *lc1;
	ListCell   *lc2;
	bool		written;

	CHECK_FOR_INTERRUPTS();
	initStringInfo(&part);
	appendStringInfoChar(&part, '[');
	for (int i = first; i < first + n; i++)
	{
		if (i > first)
			appendStringInfoChar(&part, ',');
		appendStringInfoString(&part, (char *) list_nth(records, i));
	}
	appendStringInfoChar(&part, ']');
	values[0] = CStringGetTextDatum(part.data);
	values[1] = writer_path_array(NIL);
	pfree(part.data);

	written = writer_try_statement(plan, values, map, &result, &error);
	pfree(DatumGetPointer(values[0]));
	if (written)
	{
		counts->inserted += result.inserted;
		counts->updated += result.updated;
		counts->unchanged += result.written - result.inserted - result.updated;
		forboth(lc1, result.invalid, lc2, result.invalid_errors)
			writer_reject(sink, lfirst(lc1), lfirst(lc2), counts);
		return;
	}
	if (n == 1)
	{
		writer_reject(sink, list_nth(records, first), error, counts);
		return;
	}
	writer_write_range(plan, map, records, first, n / 2, sink, counts);
	writer_write_range(plan, map, records, first + n / 2, n - n / 2, sink,
					   counts);
}
