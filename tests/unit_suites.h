/* The unit-test suites, one line each: X(name_of_suite_function). */
X(config_suite)
X(murmur2_suite)
X(envelope_suite)
X(merge_patch_suite)
X(uuid_suite)
X(producer_suite)
X(bulk_suite)
X(indexer_batch_suite)
