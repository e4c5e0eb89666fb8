/*
 * namespace.h -- give the library's internal symbols the nodup_ prefix.
 *
 * The shared library hides them (-fvisibility=hidden), but libnodup.a
 * cannot: every non-static function there is a global symbol that could
 * collide with an application's own buf_puts or merge_run. As zlib does
 * with Z_PREFIX, each internal name is mapped here to nodup__<name>, so
 * the sources keep their short names and the archive exports only
 * nodup_*. tests/scripts/symbols_test.sh fails the build's tests when a
 * new internal function is missing from this list.
 *
 * Included first by internal.h; nothing else includes it.
 */
#ifndef NODUP_NAMESPACE_H
#define NODUP_NAMESPACE_H

#define ENGINE_SQL_CITUS_TABLE nodup__ENGINE_SQL_CITUS_TABLE
#define ENGINE_SQL_CITUS_TABLE_11 nodup__ENGINE_SQL_CITUS_TABLE_11
#define ENGINE_SQL_DETECT nodup__ENGINE_SQL_DETECT
#define buf_free nodup__buf_free
#define buf_init nodup__buf_init
#define buf_putc nodup__buf_putc
#define buf_printf nodup__buf_printf
#define buf_putn nodup__buf_putn
#define buf_puts nodup__buf_puts
#define buf_reset nodup__buf_reset
#define buf_str nodup__buf_str
#define db_begin_write nodup__db_begin_write
#define db_conflict_insert nodup__db_conflict_insert
#define db_error_restore nodup__db_error_restore
#define db_error_save nodup__db_error_save
#define db_exec_params nodup__db_exec_params
#define db_fail_url nodup__db_fail_url
#define db_index_find nodup__db_index_find
#define db_looks_like_conninfo nodup__db_looks_like_conninfo
#define db_partition_key nodup__db_partition_key
#define db_read_count nodup__db_read_count
#define db_read_text nodup__db_read_text
#define db_rollback nodup__db_rollback
#define db_rollback_sql nodup__db_rollback_sql
#define db_schema_access nodup__db_schema_access
#define db_search_path_table nodup__db_search_path_table
#define db_serial nodup__db_serial
#define db_session_alive nodup__db_session_alive
#define db_session_id nodup__db_session_id
#define db_set_sqlstate nodup__db_set_sqlstate
#define db_table_exists nodup__db_table_exists
#define db_utc_ago nodup__db_utc_ago
#define db_utc_now nodup__db_utc_now
#define db_xact_lock nodup__db_xact_lock
#define enforce_ddl nodup__enforce_ddl
#define enforce_default_name nodup__enforce_default_name
#define enforce_guard_comment nodup__enforce_guard_comment
#define enforce_guard_name nodup__enforce_guard_name
#define enforce_leftovers nodup__enforce_leftovers
#define enforce_leftovers_note nodup__enforce_leftovers_note
#define enforce_leftovers_remove nodup__enforce_leftovers_remove
#define enforce_leftovers_unknown nodup__enforce_leftovers_unknown
#define engine_check nodup__engine_check
#define engine_citus_table nodup__engine_citus_table
#define engine_citus_table_sql nodup__engine_citus_table_sql
#define engine_detect nodup__engine_detect
#define engine_name nodup__engine_name
#define engine_pipeline_safe nodup__engine_pipeline_safe
#define engine_refusal nodup__engine_refusal
#define fk_collect_query nodup__fk_collect_query
#define fk_info_clear nodup__fk_info_clear
#define fk_info_free nodup__fk_info_free
#define fk_parse_ref nodup__fk_parse_ref
#define fk_same nodup__fk_same
#define fkindex_build nodup__fkindex_build
#define fkindex_describe nodup__fkindex_describe
#define fkindex_drop nodup__fkindex_drop
#define fkindex_free nodup__fkindex_free
#define fkindex_plan nodup__fkindex_plan
#define journal_archive_insert nodup__journal_archive_insert
#define journal_batch_done nodup__journal_batch_done
#define journal_claim nodup__journal_claim
#define journal_discard nodup__journal_discard
#define journal_drop_if_empty nodup__journal_drop_if_empty
#define journal_ensure nodup__journal_ensure
#define journal_find nodup__journal_find
#define journal_heartbeat nodup__journal_heartbeat
#define journal_legacy nodup__journal_legacy
#define journal_list nodup__journal_list
#define journal_load_args nodup__journal_load_args
#define journal_load_run nodup__journal_load_run
#define journal_log_insert nodup__journal_log_insert
#define journal_mark_undone nodup__journal_mark_undone
#define journal_owner_init nodup__journal_owner_init
#define journal_pass_table nodup__journal_pass_table
#define journal_read_row nodup__journal_read_row
#define journal_record nodup__journal_record
#define journal_refuse_running nodup__journal_refuse_running
#define journal_rekey_begin nodup__journal_rekey_begin
#define journal_rekey_end nodup__journal_rekey_end
#define journal_remove nodup__journal_remove
#define journal_restore nodup__journal_restore
#define journal_schema nodup__journal_schema
#define journal_sql nodup__journal_sql
#define journal_state nodup__journal_state
#define journal_state_columns nodup__journal_state_columns
#define journal_status nodup__journal_status
#define journal_step nodup__journal_step
#define journal_step_rows nodup__journal_step_rows
#define journal_steps nodup__journal_steps
#define journal_table nodup__journal_table
#define journal_version nodup__journal_version
#define key_coerce nodup__key_coerce
#define key_shape_get nodup__key_shape_get
#define key_store_id nodup__key_store_id
#define merge_in_transaction nodup__merge_in_transaction
#define merge_one_pass nodup__merge_one_pass
#define merge_run nodup__merge_run
#define options_check nodup__options_check
#define scan_mapping_cte nodup__scan_mapping_cte
#define sql_ident nodup__sql_ident
#define sql_ident_list nodup__sql_ident_list
#define sql_key_filter nodup__sql_key_filter
#define sql_name_literal nodup__sql_name_literal
#define sql_param nodup__sql_param
#define strv_free nodup__strv_free
#define survive_expr nodup__survive_expr
#define survive_find nodup__survive_find
#define survive_free nodup__survive_free
#define survive_parse nodup__survive_parse
#define suspect_count nodup__suspect_count
#define suspect_find nodup__suspect_find
#define suspect_free nodup__suspect_free
#define suspect_refuse nodup__suspect_refuse
#define table_info_column nodup__table_info_column
#define table_info_free nodup__table_info_free
#define table_info_key nodup__table_info_key
#define userexpr_check nodup__userexpr_check
#define userexpr_lex nodup__userexpr_lex
#define value_coerce nodup__value_coerce

#endif
