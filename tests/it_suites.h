/* The integration-test suites (real services), one line each. */

X(it_services_suite)
X(it_producer_suite)
X(it_indexer_suite)
X(it_worker_suite)
X(it_submission_suite)
X(it_dispose_suite)
X(it_pipeline_suite)
X(it_poison_suite)
X(it_flow_suite)
X(it_ccd_suite)
X(it_ops_suite)
X(it_import_suite)
