// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status, which Abseil 20220623
// lacks.
#ifndef MR_AGENT_COMMON_STATUS_MACROS_H_
#define MR_AGENT_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Evaluates `expr` (an absl::Status) and returns it from the enclosing
// function when it is not OK.
#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status mr_status_ = (expr);      \
    if (!mr_status_.ok()) return mr_status_; \
  } while (0)

#define MR_STATUS_CONCAT_INNER_(a, b) a##b
#define MR_STATUS_CONCAT_(a, b) MR_STATUS_CONCAT_INNER_(a, b)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status,
// otherwise moves the value into `lhs` (a declaration or an lvalue).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  MR_ASSIGN_OR_RETURN_IMPL_(MR_STATUS_CONCAT_(mr_statusor_, __LINE__), lhs, rexpr)

#define MR_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return statusor.status();         \
  lhs = std::move(statusor).value()

#endif  // MR_AGENT_COMMON_STATUS_MACROS_H_
