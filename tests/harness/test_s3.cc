#include "tests/harness/test_s3.h"

#include <curl/curl.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/harness/ports.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace testing {

absl::StatusOr<std::unique_ptr<TestS3>> TestS3::Start(const std::string& dir, bool unchecked,
                                                      bool tls) {
  const std::string modules = absl::StrCat(MR_SOURCE_DIR, "/.tools/s3-server/node_modules");
  if (!std::filesystem::exists(modules + "/@20minutes/s3rver")) {
    return absl::FailedPreconditionError(
        absl::StrCat("the test S3 server is not installed in ", modules,
                     ": run scripts/install-s3-server (make lint and make test do)"));
  }
  std::filesystem::create_directories(dir + "/data");
  {
    std::ofstream creds(dir + "/credentials");
    creds << kAccessKeyId << " " << kSecret << "\n";
  }
  std::unique_ptr<TestS3> s3(new TestS3());
  s3->runner_ = NewPosixCommandRunner();
  absl::StatusOr<int> port = FreeServerPort();
  if (!port.ok()) return port.status();
  s3->port_ = *port;
  CommandSpec spec;
  // s3rver's ListObjectsV2 continuation tokens are DES-encrypted: DES is in
  // OpenSSL 3's legacy provider.
  spec.argv = {"node",
               "--openssl-legacy-provider",
               absl::StrCat(MR_SOURCE_DIR, "/tests/fixtures/s3/server.js"),
               absl::StrCat(*port),
               dir + "/data",
               dir + "/credentials"};
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "NODE_PATH=" + modules};
  if (unchecked) spec.env.push_back("S3_SERVER_UNCHECKED=1");
  if (tls) {
    CommandSpec gen;
    gen.argv = {"openssl",  "req",
                "-x509",    "-newkey",
                "rsa:2048", "-nodes",
                "-keyout",  dir + "/key.pem",
                "-out",     dir + "/cert.pem",
                "-days",    "1",
                "-subj",    "/CN=localhost",
                "-addext",  "subjectAltName=DNS:localhost,IP:127.0.0.1"};
    gen.env = {"PATH=/usr/bin:/bin"};
    gen.timeout = absl::Seconds(60);
    absl::StatusOr<CommandResult> made = s3->runner_->Run(gen, nullptr);
    if (!made.ok()) return made.status();
    if (!made->success()) return absl::InternalError("openssl req: " + made->stderr_text);
    s3->ca_file_ = dir + "/cert.pem";
    spec.argv.push_back(dir + "/cert.pem");
    spec.argv.push_back(dir + "/key.pem");
  }
  spec.output_file = dir + "/s3-server.log";
  spec.parent_death_signal = SIGKILL;
  absl::StatusOr<std::unique_ptr<Process>> p = s3->runner_->Start(spec);
  if (!p.ok()) return p.status();
  s3->server_ = std::move(*p);
  for (int i = 0; i < 400; ++i) {
    std::ifstream log(spec.output_file);
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    if (text.find("listening") != std::string::npos) return s3;
    absl::SleepFor(absl::Milliseconds(25));
  }
  return absl::UnavailableError(
      absl::StrCat("the S3 server did not start on port ", *port, ": see ", spec.output_file));
}

TestS3::~TestS3() {
  if (server_ != nullptr) {
    server_->Signal(SIGTERM);
    if (!server_->Wait(absl::Seconds(10)).has_value()) server_->Signal(SIGKILL);
  }
}

std::string TestS3::endpoint() const {
  return absl::StrCat(ca_file_.empty() ? "http" : "https", "://127.0.0.1:", port_);
}

S3Options TestS3::Options(const std::string& bucket) const {
  S3Options o;
  o.endpoint = endpoint();
  o.bucket = bucket;
  o.path_style = true;
  o.access_key_id = kAccessKeyId;
  o.secret_access_key = kSecret;
  o.sleep = [](absl::Duration) {};
  o.ca_file = ca_file_;
  return o;
}

absl::Status TestS3::Call(const std::string& method, const std::string& path,
                          const std::string& body) const {
  CURL* h = curl_easy_init();
  if (h == nullptr) return absl::InternalError("curl_easy_init");
  const std::string url = absl::StrCat(endpoint(), path);
  curl_slist* headers = curl_slist_append(nullptr, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
  curl_easy_setopt(h, CURLOPT_USERNAME, kAccessKeyId);
  curl_easy_setopt(h, CURLOPT_PASSWORD, kSecret);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (!ca_file_.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca_file_.c_str());
  if (method == "PUT") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  std::string response;
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) -> size_t {
        static_cast<std::string*>(u)->append(d, s * n);
        return s * n;
      });
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK || code < 200 || code >= 300) {
    return absl::InternalError(absl::StrCat(method, " ", path, ": ", curl_easy_strerror(rc),
                                            " HTTP ", code, " ", response));
  }
  return absl::OkStatus();
}

absl::Status TestS3::CreateBucket(const std::string& bucket) const {
  return Call("PUT", "/" + bucket, "");
}

absl::Status TestS3::DeleteBucket(const std::string& bucket) const {
  // Empty it first (S3 deletes empty buckets only).
  S3Options o = Options(bucket);
  absl::StatusOr<std::unique_ptr<ObjectStore>> client = NewS3Client(o);
  if (!client.ok()) return client.status();
  std::string page;
  do {
    absl::StatusOr<ObjectPage> listed = (*client)->List("", page);
    if (!listed.ok()) return listed.status();
    for (const StoredObject& object : listed->objects) {
      absl::Status s = Delete(bucket, object.key);
      if (!s.ok()) return s;
    }
    page = listed->next;
  } while (!page.empty());
  return Call("DELETE", "/" + bucket, "");
}

absl::Status TestS3::Put(const std::string& bucket, const std::string& key,
                         const std::string& data) const {
  return Call("PUT", absl::StrCat("/", bucket, "/", S3UriEncode(key, true)), data);
}

absl::Status TestS3::Delete(const std::string& bucket, const std::string& key) const {
  return Call("DELETE", absl::StrCat("/", bucket, "/", S3UriEncode(key, true)), "");
}

}  // namespace testing
}  // namespace mastodon_restore
