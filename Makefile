# nango: PGXS build.  `make && make install`, then see README.md.
EXTENSION = nango
MODULE_big = nango
OBJS = src/nango.o src/launcher.o src/scheduler.o src/run.o src/api.o \
	src/sync_config.o src/paging.o src/page.o src/http.o src/writer.o
DATA = sql/nango--0.1.sql
PGFILEDESC = "nango - keep tables in sync with HTTP APIs"

PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags libcurl jansson 2>/dev/null)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-Wno-sign-compare -Wno-cast-function-type
SHLIB_LINK = -lcurl -ljansson

# pg_regress runs against the cluster that test/run starts (see README.md);
# test/run also runs the TAP tests in test/t with prove.
REGRESS = $(patsubst sql/%.sql,%,$(sort $(filter-out sql/nango--%,$(wildcard sql/*.sql))))

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
