/* Test support: CCD data store's checks of the answers of a decentralised service
 * (../shared/CCD-CONTRACT.md), for the tests of lib/ccd_view.c and of casestream-api.
 *
 * Each function applies what CCD's ServicePersistenceClient applies to one answer
 * (validateCaseDetails: revision, case_details.version and case_details.security_classification
 * present, reference, case_type_id and jurisdiction equal to the case's - the reference is
 * CaseDetails' "id" on the wire, its getReference() being @JsonGetter("id");
 * extractValidatedAuditEvent: case_reference equal to the case's, event.case_type_id equal to its
 * case type), what its JSON reader needs (members of the right JSON types, dates as ISO local
 * date-times, a known security classification), and that every object has exactly CCD's member
 * names for its shape: none missing, none extra. Each returns true, or false with the first rule
 * broken in why. */
#ifndef CS_CCD_CONTRACT_H
#define CS_CCD_CONTRACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The case CCD asked about: what it holds of it before it calls the service. */
typedef struct cs_ccd_case {
    long long reference;
    const char *case_type_id;
    const char *jurisdiction;
} cs_ccd_case;

/* One {case_details, revision} of case c. */
bool cs_ccd_contract_case(const json_t *answer, const cs_ccd_case *c, char *why, size_t why_size);

/* The answer of GET /ccd-persistence/cases?case-refs=: an array holding exactly the cases
 * found[0..n-1] (the references asked that exist, in any order), one each, in reference order. */
bool cs_ccd_contract_cases(const char *body, const cs_ccd_case *found, size_t n, char *why,
                           size_t why_size);

/* One {id, case_reference, event} of case c's history. */
bool cs_ccd_contract_audit_event(const json_t *answer, const cs_ccd_case *c, char *why,
                                 size_t why_size);

/* The answer of GET .../cases/{ref}/history: an array of audit events of case c, ids unique,
 * newest first (created_date never rising). */
bool cs_ccd_contract_history(const char *body, const cs_ccd_case *c, char *why, size_t why_size);

/* The answer of GET .../cases/{ref}/history/{event-id}: one audit event of case c whose id is
 * history_id. */
bool cs_ccd_contract_event(const char *body, const cs_ccd_case *c, long long history_id, char *why,
                           size_t why_size);

/* The answer of a submit that succeeded: {case_details, revision, errors, warnings,
 * ignore_warning} (CCD's DecentralisedSubmitEventResponse), case_details and revision as in
 * cs_ccd_contract_case, no errors, and no warnings unless ignore_warning is true (else CCD
 * refuses the event). */
bool cs_ccd_contract_submitted(const char *body, const cs_ccd_case *c, char *why, size_t why_size);

/* The answer of a submit the service refused for its content: the same five members, with a
 * non-empty errors array of strings (which CCD shows the user). */
bool cs_ccd_contract_refused(const char *body, char *why, size_t why_size);

#endif
