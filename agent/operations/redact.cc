#include "agent/operations/redact.h"

#include <vector>

#include "mastodon/restore/v1/options.pb.h"

namespace mastodon_restore {

void RedactSensitive(google::protobuf::Message* message) {
  const google::protobuf::Reflection* reflection = message->GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  reflection->ListFields(*message, &fields);
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->options().GetExtension(mastodon::restore::v1::sensitive)) {
      reflection->ClearField(message, field);
      continue;
    }
    if (field->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (field->is_repeated()) {
      for (int i = 0; i < reflection->FieldSize(*message, field); ++i) {
        RedactSensitive(reflection->MutableRepeatedMessage(message, field, i));
      }
    } else {
      RedactSensitive(reflection->MutableMessage(message, field));
    }
  }
}

}  // namespace mastodon_restore
