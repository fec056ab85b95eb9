#include "cli/backup_report.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mastodon_restore {
namespace {

namespace pb = google::protobuf;

constexpr char kTypeUrlPrefix[] = "type.googleapis.com";

// `op` as a JSON value: its JSON mapping with proto field names, parsed.
pb::Value OperationValue(const mastodon::restore::v1::Operation& op) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  pb::Value value;
  if (!pb::util::MessageToJsonString(op, &json, options).ok() ||
      !pb::util::JsonStringToMessage(json, &value).ok()) {
    value.set_null_value(pb::NULL_VALUE);
  }
  return value;
}

}  // namespace

pb::Struct BackupCheckReport(const std::string& source, const std::string& database,
                             const mastodon::restore::v1::Operation& restore,
                             const mastodon::restore::v1::Operation* verify, int exit_code) {
  pb::Struct report;
  auto& fields = *report.mutable_fields();
  fields["source"].set_string_value(source);
  fields["database"].set_string_value(database);
  fields["passed"].set_bool_value(exit_code == 0);
  fields["exit_code"].set_number_value(exit_code);
  fields["restore"] = OperationValue(restore);
  if (verify != nullptr) {
    fields["verify"] = OperationValue(*verify);
  } else {
    fields["verify"].set_null_value(pb::NULL_VALUE);
  }
  return report;
}

absl::StatusOr<std::string> SortedJson(const pb::Message& message,
                                       const pb::util::JsonPrintOptions& options) {
  std::string binary;
  {
    pb::io::StringOutputStream stream(&binary);
    pb::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // map entries sorted by key
    if (!message.SerializeToCodedStream(&coded)) {
      return absl::InternalError(
          absl::StrCat("unable to serialize ", message.GetTypeName(), " for JSON"));
    }
  }
  std::unique_ptr<pb::util::TypeResolver> resolver(pb::util::NewTypeResolverForDescriptorPool(
      kTypeUrlPrefix, pb::DescriptorPool::generated_pool()));
  std::string json;
  auto status = pb::util::BinaryToJsonString(
      resolver.get(), absl::StrCat(kTypeUrlPrefix, "/", message.GetDescriptor()->full_name()),
      binary, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("unable to format ", message.GetTypeName(), " as JSON: ", status.ToString()));
  }
  return json;
}

}  // namespace mastodon_restore
