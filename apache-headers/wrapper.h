/* Everything the telemetry module touches in httpd 2.4 and APR. */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <http_connection.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <scoreboard.h>
#include <util_filter.h>
#include <unixd.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_buckets.h>
#include <apr_pools.h>
