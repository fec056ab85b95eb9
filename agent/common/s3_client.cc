#include "agent/common/s3_client.h"

#include <curl/curl.h>
#include <expat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;
constexpr size_t kMaxListingBody = 32 << 20;
constexpr size_t kStreamBuffer = 1 << 20;

// ---------------------------------------------------------------------------
// XML: the elements of a response, by their path from the root
// ("ListBucketResult/Contents/Key"), handed over as each one closes.

class XmlReader {
 public:
  using OnElement = std::function<void(const std::string& path, const std::string& text)>;
  explicit XmlReader(OnElement on_element) : on_element_(std::move(on_element)) {}

  // INVALID_ARGUMENT when `xml` is not well-formed.
  absl::Status Parse(absl::string_view xml) {
    XML_Parser parser = XML_ParserCreate("UTF-8");
    if (parser == nullptr) return absl::ResourceExhaustedError("unable to create an XML parser");
    XML_SetUserData(parser, this);
    XML_SetElementHandler(parser, &XmlReader::Start, &XmlReader::End);
    XML_SetCharacterDataHandler(parser, &XmlReader::Text);
    absl::Status status;
    if (XML_Parse(parser, xml.data(), static_cast<int>(xml.size()), XML_TRUE) == XML_STATUS_ERROR) {
      status = absl::InvalidArgumentError(absl::StrCat("malformed XML at line ",
                                                       XML_GetCurrentLineNumber(parser), ": ",
                                                       XML_ErrorString(XML_GetErrorCode(parser))));
    }
    XML_ParserFree(parser);
    return status;
  }

 private:
  static void Start(void* self, const XML_Char* name, const XML_Char**) {
    auto* r = static_cast<XmlReader*>(self);
    // Namespaced names arrive plain (no namespace processing).
    r->marks_.push_back(r->path_.size());
    if (!r->path_.empty()) r->path_.push_back('/');
    r->path_.append(name);
    r->text_.clear();
  }
  static void End(void* self, const XML_Char*) {
    auto* r = static_cast<XmlReader*>(self);
    r->on_element_(r->path_, r->text_);
    r->path_.resize(r->marks_.back());
    r->marks_.pop_back();
    r->text_.clear();
  }
  static void Text(void* self, const XML_Char* s, int len) {
    static_cast<XmlReader*>(self)->text_.append(s, static_cast<size_t>(len));
  }

  OnElement on_element_;
  std::string path_;
  std::vector<size_t> marks_;
  std::string text_;
};

// "2026-12-04T18:13:00.000Z" -> seconds since the epoch (0 when unparsable).
int64_t ParseIsoTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", text, &t, &err)) return absl::ToUnixSeconds(t);
  return 0;
}

// "Fri, 04 Dec 2026 18:13:00 GMT" -> seconds since the epoch (0 when not).
int64_t ParseHttpTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", text, &t, &err)) return absl::ToUnixSeconds(t);
  return 0;
}

std::string Unquote(absl::string_view etag) {
  absl::ConsumePrefix(&etag, "\"");
  absl::ConsumeSuffix(&etag, "\"");
  return std::string(etag);
}

// The service's own error: "Code: Message" from an S3 <Error> body.
struct ServiceError {
  std::string code;
  std::string message;
};
ServiceError ParseServiceError(const std::string& body) {
  ServiceError e;
  XmlReader reader([&](const std::string& path, const std::string& text) {
    if (path == "Error/Code") e.code = text;
    if (path == "Error/Message") e.message = text;
  });
  reader.Parse(body).IgnoreError();
  return e;
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || absl::EndsWith(host, ".localhost") || host == "[::1]" ||
         absl::StartsWith(host, "127.");
}

struct Endpoint {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower case; "[v6]" bracketed
  std::string port;    // "" for the scheme's default
  std::string path;    // "" or "/base" (no trailing "/")
};

absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view url) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("bucket endpoint '", url, "': ", why));
  };
  Endpoint e;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "https://")) {
    e.scheme = "https";
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    e.scheme = "http";
  } else {
    return bad("give an https:// (or, for a loopback address, http://) URL");
  }
  if (rest.find_first_of("?#@ ") != absl::string_view::npos) {
    return bad("no credentials, query, fragment or space belong in the endpoint");
  }
  size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    e.path = std::string(absl::StripSuffix(rest.substr(slash), "/"));
    while (absl::EndsWith(e.path, "/")) e.path.pop_back();
  }
  std::string host_port = absl::AsciiStrToLower(authority);
  size_t colon = host_port.rfind(':');
  if (colon != std::string::npos && host_port.find(']', colon) == std::string::npos) {
    e.port = host_port.substr(colon + 1);
    host_port.resize(colon);
    int port = 0;
    if (!absl::SimpleAtoi(e.port, &port) || port <= 0 || port > 65535) return bad("bad port");
    if ((e.scheme == "https" && port == 443) || (e.scheme == "http" && port == 80)) e.port.clear();
  }
  e.host = host_port;
  if (e.host.empty()) return bad("no host");
  for (char c : e.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '[' ||
          c == ']' || c == ':')) {
      return bad("the host holds characters a host name cannot");
    }
  }
  if (e.scheme == "http" && !IsLoopbackHost(e.host)) {
    return bad("plain http is accepted for a loopback address only: use https://");
  }
  return e;
}

std::string EndpointString(const Endpoint& e) {
  return absl::StrCat(e.scheme, "://", e.host, e.port.empty() ? "" : ":", e.port, e.path);
}

// One lock per kind of data libcurl shares between handles.
struct SharedState {
  CURLSH* share = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];
};

void ShareLock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
  static_cast<SharedState*>(user)->locks[data].lock();
}
void ShareUnlock(CURL*, curl_lock_data data, void* user) {
  static_cast<SharedState*>(user)->locks[data].unlock();
}

struct CurlSlist {
  curl_slist* list = nullptr;
  ~CurlSlist() { curl_slist_free_all(list); }
  void Add(const std::string& header) { list = curl_slist_append(list, header.c_str()); }
};

// A response as far as it was read.
struct Response {
  long code = 0;  // 0: no response (a transport error)
  CURLcode curl = CURLE_OK;
  std::string curl_error;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

size_t CollectHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Response*>(user);
  absl::string_view line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) r->headers.clear();  // a new response (after 100)
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    r->headers[absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon)))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

bool Transient(const Response& r) {
  if (r.code == 0) {
    switch (r.curl) {
      case CURLE_COULDNT_CONNECT:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        return true;
      default:
        return false;
    }
  }
  return r.code >= 500 || r.code == 429;
}

class S3Client : public ObjectStore {
 public:
  S3Client(S3Options options, Endpoint endpoint)
      : o_(std::move(options)), endpoint_(std::move(endpoint)) {
    if (o_.region.empty()) o_.region = "us-east-1";
    if (!o_.sleep) o_.sleep = [](absl::Duration d) { absl::SleepFor(d); };
    o_.attempts = std::max(1, o_.attempts);
    shared_.share = curl_share_init();
    curl_share_setopt(shared_.share, CURLSHOPT_LOCKFUNC, &ShareLock);
    curl_share_setopt(shared_.share, CURLSHOPT_UNLOCKFUNC, &ShareUnlock);
    curl_share_setopt(shared_.share, CURLSHOPT_USERDATA, &shared_);
    curl_share_setopt(shared_.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(shared_.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(shared_.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    sigv4_ = absl::StrCat("aws:amz:", o_.region, ":s3");
  }
  ~S3Client() override { curl_share_cleanup(shared_.share); }

  std::string Describe(const std::string& key) const override {
    return absl::StrCat("s3://", o_.bucket, "/", key);
  }

  absl::StatusOr<ObjectPage> List(const std::string& prefix,
                                  const std::string& page) const override {
    std::map<std::string, std::string> query = {{"list-type", "2"},
                                                {"max-keys", absl::StrCat(o_.page_size)}};
    if (!prefix.empty()) query["prefix"] = prefix;
    if (!page.empty()) query["continuation-token"] = page;
    ASSIGN_OR_RETURN(Response r, Request("GET", "", query, {}, kMaxListingBody));
    RETURN_IF_ERROR(Check(r, Describe(prefix), "list"));
    ObjectPage result;
    StoredObject current;
    bool truncated = false;
    XmlReader reader([&](const std::string& path, const std::string& text) {
      if (path == "ListBucketResult/Contents/Key") current.key = text;
      if (path == "ListBucketResult/Contents/Size") absl::SimpleAtoi(text, &current.size);
      if (path == "ListBucketResult/Contents/LastModified") current.mtime = ParseIsoTime(text);
      if (path == "ListBucketResult/Contents/ETag") current.etag = Unquote(text);
      if (path == "ListBucketResult/Contents") {
        result.objects.push_back(std::move(current));
        current = StoredObject();
      }
      if (path == "ListBucketResult/IsTruncated") truncated = text == "true";
      if (path == "ListBucketResult/NextContinuationToken") result.next = text;
    });
    absl::Status parsed = reader.Parse(r.body);
    if (!parsed.ok()) {
      return absl::UnavailableError(absl::StrCat("unable to list ", Describe(prefix),
                                                 ": the listing is not S3's: ", parsed.message()));
    }
    if (!truncated) result.next.clear();
    if (truncated && result.next.empty()) {
      return absl::UnavailableError(absl::StrCat(
          "unable to list ", Describe(prefix), ": a truncated page without a continuation token"));
    }
    return result;
  }

  absl::StatusOr<std::unique_ptr<ByteStream>> Open(const StoredObject& object) const override;

  absl::StatusOr<StoredObject> Head(const std::string& key) const override {
    ASSIGN_OR_RETURN(Response r, Request("HEAD", key, {}, {}, kMaxErrorBody));
    if (r.code == 404) {
      return absl::NotFoundError(absl::StrCat(Describe(key), " does not exist"));
    }
    RETURN_IF_ERROR(Check(r, Describe(key), "look up"));
    StoredObject object;
    object.key = key;
    absl::SimpleAtoi(r.headers["content-length"], &object.size);
    object.mtime = ParseHttpTime(r.headers["last-modified"]);
    object.etag = Unquote(r.headers["etag"]);
    for (const auto& [name, value] : r.headers) {
      if (absl::StartsWith(name, "x-amz-meta-")) object.metadata[name.substr(11)] = value;
    }
    return object;
  }

  absl::StatusOr<std::string> Put(const std::string& key, const std::string& data,
                                  const std::vector<std::string>& headers) const override {
    ASSIGN_OR_RETURN(Response r, Request("PUT", key, {}, headers, kMaxErrorBody, &data));
    RETURN_IF_ERROR(Check(r, Describe(key), "write"));
    return Unquote(r.headers["etag"]);
  }

  absl::StatusOr<std::unique_ptr<ObjectUpload>> StartUpload(
      const std::string& key, const std::vector<std::string>& headers) const override;

  bool CanCopyFrom(const ObjectStore& source) const override {
    const auto* from = dynamic_cast<const S3Client*>(&source);
    return from != nullptr && EndpointString(from->endpoint_) == EndpointString(endpoint_) &&
           from->o_.region == o_.region && from->o_.access_key_id == o_.access_key_id &&
           from->o_.path_style == o_.path_style;
  }

  absl::StatusOr<std::string> Copy(const ObjectStore& source, const StoredObject& object,
                                   const std::string& key,
                                   const std::vector<std::string>& headers) const override {
    // CopyObject takes up to 5 GiB; bigger objects are read and written.
    if (!CanCopyFrom(source) || object.size > (int64_t{5} << 30)) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to copy ", source.Describe(object.key), " to ", Describe(key),
                       " in the store: not the same service and credentials, or over 5 GiB"));
    }
    const auto& from = static_cast<const S3Client&>(source);
    std::vector<std::string> all = headers;
    all.push_back(absl::StrCat("x-amz-copy-source: /", S3UriEncode(from.o_.bucket, false), "/",
                               S3UriEncode(object.key, true)));
    // The headers given, not the source's.
    all.push_back("x-amz-metadata-directive: REPLACE");
    if (!object.etag.empty()) {
      all.push_back(absl::StrCat("x-amz-copy-source-if-match: \"", object.etag, "\""));
    }
    const std::string what = absl::StrCat(source.Describe(object.key), " to ", Describe(key));
    const std::string empty;
    ASSIGN_OR_RETURN(Response r, Request("PUT", key, {}, all, kMaxErrorBody, &empty));
    RETURN_IF_ERROR(Check(r, what, "copy"));
    // A copy can fail after its 200 has been sent: the body tells.
    ServiceError e = ParseServiceError(r.body);
    if (!e.code.empty()) {
      return absl::UnavailableError(
          absl::StrCat("unable to copy ", what, ": ", e.code, ": ", e.message));
    }
    std::string etag;
    XmlReader reader([&](const std::string& path, const std::string& text) {
      if (path == "CopyObjectResult/ETag") etag = Unquote(text);
    });
    reader.Parse(r.body).IgnoreError();
    return etag;
  }

  // A handle set up for one request on `key` ("" for the bucket) with
  // `query` (encoded and sorted here: SigV4 signs the query as sent).
  CURL* NewHandle(const std::string& method, const std::string& key,
                  const std::map<std::string, std::string>& query, CurlSlist* headers) const {
    CURL* h = curl_easy_init();
    if (h == nullptr) return nullptr;
    std::string url = Url(key, query);
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_SHARE, shared_.share);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, o_.access_key_id.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, o_.secret_access_key.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(o_.connect_timeout)));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(
        h, CURLOPT_LOW_SPEED_TIME,
        static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(o_.stall_timeout))));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!o_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, o_.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mastodon-restore");
    if (method == "HEAD") curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    // The payload is not signed (S3 accepts UNSIGNED-PAYLOAD over any
    // transport; the body of a GET is empty anyway).
    headers->Add("x-amz-content-sha256: UNSIGNED-PAYLOAD");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers->list);
    return h;
  }

  // The error of a finished request (OK for 2xx).
  absl::Status Check(const Response& r, const std::string& what, const std::string& verb) const {
    if (r.code >= 200 && r.code < 300) return absl::OkStatus();
    const std::string prefix = absl::StrCat("unable to ", verb, " ", what, ": ");
    if (r.code == 0) {
      const std::string cause =
          absl::StrCat(EndpointString(endpoint_), " ",
                       r.curl_error.empty() ? curl_easy_strerror(r.curl) : r.curl_error);
      switch (r.curl) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CONNECT_ERROR:
          return absl::FailedPreconditionError(absl::StrCat(
              prefix, "TLS: ", cause, " (a private endpoint's CA goes in the bucket's ca_file)"));
        case CURLE_ABORTED_BY_CALLBACK:
          return absl::CancelledError(absl::StrCat(prefix, "cancelled"));
        default:
          return absl::UnavailableError(absl::StrCat(prefix, cause));
      }
    }
    ServiceError e = ParseServiceError(r.body);
    const std::string said = e.code.empty()
                                 ? absl::StrCat("HTTP ", r.code)
                                 : absl::StrCat(e.code, e.message.empty() ? "" : ": ", e.message);
    if (e.code == "SignatureDoesNotMatch" || e.code == "InvalidAccessKeyId" ||
        e.code == "AccessDenied" || e.code == "AuthorizationHeaderMalformed" || r.code == 403) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "the store refused the credentials of access key '",
                       o_.access_key_id, "' (", said, ")"));
    }
    if (e.code == "NoSuchBucket" || e.code == "PermanentRedirect" || r.code == 301) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "no bucket '", o_.bucket, "' at ",
                                                     EndpointString(endpoint_), " in region ",
                                                     o_.region, " (", said, ")"));
    }
    if (r.code == 404) return absl::NotFoundError(absl::StrCat(prefix, said));
    if (r.code == 412) {
      return absl::AbortedError(absl::StrCat(prefix, "it changed while it was read (", said, ")"));
    }
    if (r.code >= 500 || r.code == 429) return absl::UnavailableError(absl::StrCat(prefix, said));
    return absl::InvalidArgumentError(absl::StrCat(prefix, said));
  }

  const S3Options& options() const { return o_; }

  // Waits before attempt `attempt` (from 1); false when cancelled.
  bool Backoff(int attempt) const {
    if (o_.cancel != nullptr && o_.cancel->cancelled()) return false;
    o_.sleep(o_.retry_pause * (1 << std::min(attempt - 1, 6)));
    return o_.cancel == nullptr || !o_.cancel->cancelled();
  }

 private:
  std::string Url(const std::string& key, const std::map<std::string, std::string>& query) const {
    std::string url;
    if (o_.path_style) {
      // The bucket itself is "/<bucket>", with no trailing "/" (as the SDKs
      // send it, and as path-style services sign it).
      url = absl::StrCat(EndpointString(endpoint_), "/", S3UriEncode(o_.bucket, false),
                         key.empty() ? "" : "/", S3UriEncode(key, true));
    } else {
      url = absl::StrCat(endpoint_.scheme, "://", o_.bucket, ".", endpoint_.host,
                         endpoint_.port.empty() ? "" : ":", endpoint_.port, endpoint_.path, "/",
                         S3UriEncode(key, true));
    }
    char sep = '?';
    for (const auto& [name, value] : query) {  // sorted by name
      absl::StrAppend(&url, std::string(1, sep), S3UriEncode(name, false), "=",
                      S3UriEncode(value, false));
      sep = '&';
    }
    return url;
  }

  // A request whose whole response is read (at most `limit` bytes of
  // body), retried while it fails in a transient way.
  // `upload` (for a PUT or a POST) is sent as the body, from its start at
  // each attempt; a PUT's counts against the bandwidth cap.
 public:
  absl::StatusOr<Response> Request(const std::string& method, const std::string& key,
                                   const std::map<std::string, std::string>& query,
                                   const std::vector<std::string>& extra_headers, size_t limit,
                                   const std::string* upload = nullptr) const {
    Response r;
    for (int attempt = 1; attempt <= o_.attempts; ++attempt) {
      if (attempt > 1 && !Backoff(attempt - 1)) break;
      r = Response();
      CurlSlist headers;
      for (const std::string& h : extra_headers) headers.Add(h);
      CURL* h = NewHandle(method, key, query, &headers);
      if (h == nullptr) return absl::ResourceExhaustedError("unable to create an HTTP handle");
      struct Sink {
        Response* r;
        size_t limit;
      } sink{&r, limit};
      curl_easy_setopt(
          h, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* user) -> size_t {
            auto* s = static_cast<Sink*>(user);
            if (s->r->body.size() + size * n > s->limit) return 0;
            s->r->body.append(data, size * n);
            return size * n;
          });
      curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
      curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &CollectHeader);
      curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
      struct Source {
        const std::string* data;
        size_t pos;
        RateLimiter* limit;
      } source{upload, 0, o_.rate_limit.get()};
      if (method == "POST") {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(upload == nullptr ? 0 : upload->size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, upload == nullptr ? "" : upload->c_str());
      } else if (method == "DELETE") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
      } else if (upload != nullptr) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(upload->size()));
        curl_easy_setopt(
            h, CURLOPT_READFUNCTION, +[](char* out, size_t size, size_t n, void* user) -> size_t {
              auto* src = static_cast<Source*>(user);
              const size_t take = std::min(size * n, src->data->size() - src->pos);
              if (src->limit != nullptr) src->limit->Acquire(static_cast<int64_t>(take));
              std::memcpy(out, src->data->data() + src->pos, take);
              src->pos += take;
              return take;
            });
        curl_easy_setopt(h, CURLOPT_READDATA, &source);
      }
      char error[CURL_ERROR_SIZE] = {0};
      curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
      r.curl = curl_easy_perform(h);
      r.curl_error = error;
      if (r.curl == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.code);
      curl_easy_cleanup(h);
      if (r.curl == CURLE_WRITE_ERROR) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the response to ", method, " ", Describe(key), " exceeds ", limit, " bytes"));
      }
      if (!Transient(r)) break;
    }
    return r;
  }

 private:
  S3Options o_;
  Endpoint endpoint_;
  std::string sigv4_;
  mutable SharedState shared_;
};

// An object read as a stream: one GET driven from Read() through a private
// multi handle (so bytes arrive only as fast as they are consumed: the
// transfer pauses while a buffer is full); a transfer broken after some
// bytes is taken up at the next byte with a Range request that holds only
// while the object's ETag is the one listed (If-Match).
class ObjectStream : public ByteStream {
 public:
  ObjectStream(const S3Client* client, StoredObject object)
      : client_(client), object_(std::move(object)), name_(client->Describe(object_.key)) {}
  ~ObjectStream() override { Finish(); }

  const std::string& name() const override { return name_; }
  int64_t raw_bytes_read() const override { return delivered_; }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    while (pos_ == buffer_.size()) {
      buffer_.clear();
      pos_ = 0;
      if (ended_) return 0;
      RETURN_IF_ERROR(error_);
      RETURN_IF_ERROR(Pump());
    }
    size_t take = std::min(n, buffer_.size() - pos_);
    std::memcpy(buf, buffer_.data() + pos_, take);
    pos_ += take;
    delivered_ += static_cast<int64_t>(take);
    if (RateLimiter* limit = client_->options().rate_limit.get()) {
      limit->Acquire(static_cast<int64_t>(take));
    }
    return take;
  }

 private:
  // Moves the transfer on until bytes are buffered, it ends, or fails.
  absl::Status Pump() {
    for (;;) {
      if (multi_ == nullptr) RETURN_IF_ERROR(Start());
      if (paused_) {
        paused_ = false;
        curl_easy_pause(easy_, CURLPAUSE_CONT);
      }
      int running = 0;
      CURLMcode mc = curl_multi_perform(multi_, &running);
      if (mc != CURLM_OK) {
        return error_ = absl::InternalError(
                   absl::StrCat("unable to read ", name_, ": ", curl_multi_strerror(mc)));
      }
      if (!buffer_.empty()) return absl::OkStatus();
      if (running == 0) {
        CURLcode result = CURLE_OK;
        int left = 0;
        while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
          if (m->msg == CURLMSG_DONE) result = m->data.result;
        }
        Response r;
        r.curl = result;
        r.curl_error = error_text_;
        if (result == CURLE_OK) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &r.code);
        r.body = error_body_;
        Finish();
        if (r.code >= 200 && r.code < 300 && result == CURLE_OK) {
          if (object_.size >= 0 && received_ != object_.size) {
            return error_ = absl::UnavailableError(absl::StrCat("unable to read ", name_, ": ",
                                                                received_, " bytes arrived of ",
                                                                object_.size));
          }
          ended_ = true;
          return absl::OkStatus();
        }
        if (!Transient(r) || ++failures_ >= client_->options().attempts) {
          return error_ = client_->Check(r, name_, "read");
        }
        if (!client_->Backoff(failures_)) {
          return error_ = absl::CancelledError(absl::StrCat("reading ", name_, " cancelled"));
        }
        continue;  // taken up again at byte received_
      }
      const CancelToken* cancel = client_->options().cancel;
      if (cancel != nullptr && cancel->cancelled()) {
        Finish();
        return error_ = absl::CancelledError(absl::StrCat("reading ", name_, " cancelled"));
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
  }

  absl::Status Start() {
    headers_ = std::make_unique<CurlSlist>();
    if (received_ > 0) {
      headers_->Add(absl::StrCat("Range: bytes=", received_, "-"));
      if (!object_.etag.empty()) headers_->Add(absl::StrCat("If-Match: \"", object_.etag, "\""));
    }
    easy_ = client_->NewHandle("GET", object_.key, {}, headers_.get());
    multi_ = curl_multi_init();
    if (easy_ == nullptr || multi_ == nullptr) {
      Finish();
      return error_ = absl::ResourceExhaustedError("unable to create an HTTP handle");
    }
    error_body_.clear();
    error_text_[0] = '\0';
    first_write_ = true;
    curl_easy_setopt(easy_, CURLOPT_ERRORBUFFER, error_text_);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &ObjectStream::Write);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    curl_multi_add_handle(multi_, easy_);
    return absl::OkStatus();
  }

  static size_t Write(char* data, size_t size, size_t n, void* user) {
    auto* s = static_cast<ObjectStream*>(user);
    const size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(s->easy_, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code >= 300) {  // an error's body, kept for its message
      if (s->error_body_.size() < kMaxErrorBody) s->error_body_.append(data, len);
      return len;
    }
    if (s->first_write_) {
      s->first_write_ = false;
      if (s->received_ > 0 && code == 200) {
        // A resumed transfer answered with the whole object: skip what was
        // delivered already.
        s->skip_ = s->received_;
        s->received_ = 0;
      }
    }
    if (s->buffer_.size() >= kStreamBuffer) {
      s->paused_ = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    size_t off = 0;
    if (s->skip_ > 0) {
      off = static_cast<size_t>(std::min<int64_t>(s->skip_, static_cast<int64_t>(len)));
      s->skip_ -= static_cast<int64_t>(off);
      s->received_ += static_cast<int64_t>(off);
    }
    s->buffer_.append(data + off, len - off);
    s->received_ += static_cast<int64_t>(len - off);
    return len;
  }

  void Finish() {
    if (multi_ != nullptr && easy_ != nullptr) curl_multi_remove_handle(multi_, easy_);
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    easy_ = nullptr;
    multi_ = nullptr;
    headers_.reset();
    paused_ = false;
  }

  const S3Client* client_;
  const StoredObject object_;
  const std::string name_;
  CURL* easy_ = nullptr;
  CURLM* multi_ = nullptr;
  std::unique_ptr<CurlSlist> headers_;
  char error_text_[CURL_ERROR_SIZE] = {0};
  std::string error_body_;
  std::string buffer_;
  size_t pos_ = 0;
  bool paused_ = false;
  bool ended_ = false;
  // The object's bytes received from the store, and delivered to the reader.
  int64_t received_ = 0;
  int64_t delivered_ = 0;
  int64_t skip_ = 0;
  // No byte of the current transfer has arrived yet.
  bool first_write_ = true;
  int failures_ = 0;
  absl::Status error_;
};

absl::StatusOr<std::unique_ptr<ByteStream>> S3Client::Open(const StoredObject& object) const {
  return std::unique_ptr<ByteStream>(new ObjectStream(this, object));
}

// A multipart upload: CreateMultipartUpload, UploadPart for each part (from
// any thread), then CompleteMultipartUpload with the parts' ETags, or
// AbortMultipartUpload.
class S3Upload : public ObjectUpload {
 public:
  S3Upload(const S3Client* client, std::string key, std::string upload_id)
      : client_(client), key_(std::move(key)), upload_id_(std::move(upload_id)) {}
  ~S3Upload() override {
    if (!done_) Abort();
  }

  absl::Status PutPart(int number, const std::string& data) override {
    if (number < 1 || number > kMaxParts) {
      return absl::InvalidArgumentError(absl::StrCat("part number ", number, " out of range"));
    }
    ASSIGN_OR_RETURN(Response r, client_->Request("PUT", key_,
                                                  {{"partNumber", absl::StrCat(number)},
                                                   {"uploadId", upload_id_}},
                                                  {}, kMaxErrorBody, &data));
    RETURN_IF_ERROR(client_->Check(r, Describe(number), "write"));
    const std::string etag = Unquote(r.headers["etag"]);
    if (etag.empty()) {
      return absl::UnavailableError(
          absl::StrCat("unable to write ", Describe(number), ": the store gave no ETag"));
    }
    std::lock_guard<std::mutex> lock(mu_);
    etags_[number] = etag;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Complete() override {
    std::string body = "<CompleteMultipartUpload>";
    {
      std::lock_guard<std::mutex> lock(mu_);
      int expected = 1;
      for (const auto& [number, etag] : etags_) {
        if (number != expected++) {
          return absl::InternalError(absl::StrCat("unable to complete ", client_->Describe(key_),
                                                  ": part ", expected - 1, " was not sent"));
        }
        absl::StrAppend(&body, "<Part><PartNumber>", number, "</PartNumber><ETag>\"", etag,
                        "\"</ETag></Part>");
      }
    }
    absl::StrAppend(&body, "</CompleteMultipartUpload>");
    ASSIGN_OR_RETURN(Response r,
                     client_->Request("POST", key_, {{"uploadId", upload_id_}},
                                      {"Content-Type: application/xml"}, kMaxErrorBody, &body));
    RETURN_IF_ERROR(client_->Check(r, client_->Describe(key_), "complete the upload of"));
    // A 200 can still carry an error (S3 reports one found late that way).
    ServiceError e = ParseServiceError(r.body);
    if (!e.code.empty()) {
      return absl::UnavailableError(absl::StrCat("unable to complete the upload of ",
                                                 client_->Describe(key_), ": ", e.code, ": ",
                                                 e.message));
    }
    std::string etag;
    XmlReader reader([&](const std::string& path, const std::string& text) {
      if (path == "CompleteMultipartUploadResult/ETag") etag = Unquote(text);
    });
    reader.Parse(r.body).IgnoreError();
    done_ = true;
    return etag;
  }

  void Abort() override {
    done_ = true;
    client_->Request("DELETE", key_, {{"uploadId", upload_id_}}, {}, kMaxErrorBody)
        .status()
        .IgnoreError();
  }

 private:
  std::string Describe(int number) const {
    return absl::StrCat(client_->Describe(key_), " (part ", number, ")");
  }

  const S3Client* client_;
  const std::string key_;
  const std::string upload_id_;
  std::mutex mu_;
  std::map<int, std::string> etags_;
  bool done_ = false;
};

absl::StatusOr<std::unique_ptr<ObjectUpload>> S3Client::StartUpload(
    const std::string& key, const std::vector<std::string>& headers) const {
  ASSIGN_OR_RETURN(Response r, Request("POST", key, {{"uploads", ""}}, headers, kMaxErrorBody));
  RETURN_IF_ERROR(Check(r, Describe(key), "start the upload of"));
  std::string upload_id;
  XmlReader reader([&](const std::string& path, const std::string& text) {
    if (path == "InitiateMultipartUploadResult/UploadId") upload_id = text;
  });
  if (!reader.Parse(r.body).ok() || upload_id.empty()) {
    return absl::UnavailableError(absl::StrCat("unable to start the upload of ", Describe(key),
                                               ": the store's answer names no upload id"));
  }
  return std::unique_ptr<ObjectUpload>(new S3Upload(this, key, std::move(upload_id)));
}

}  // namespace

std::string S3UriEncode(absl::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::StatusOr<std::string> CanonicalS3Endpoint(absl::string_view endpoint) {
  ASSIGN_OR_RETURN(Endpoint e, ParseEndpoint(endpoint));
  return EndpointString(e);
}

absl::StatusOr<std::unique_ptr<ObjectStore>> NewS3Client(const S3Options& options) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(options.endpoint));
  const std::string& b = options.bucket;
  if (b.size() < 3 || b.size() > 63 ||
      !std::all_of(b.begin(), b.end(),
                   [](char c) {
                     return std::islower(static_cast<unsigned char>(c)) ||
                            std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-';
                   }) ||
      !std::isalnum(static_cast<unsigned char>(b.front())) ||
      !std::isalnum(static_cast<unsigned char>(b.back()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bucket name '", b, "': 3 to 63 lower-case letters, digits, dots and hyphens"));
  }
  if (options.access_key_id.empty() || options.secret_access_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucket '", b, "': an access key id and its secret are required"));
  }
  for (char c : options.access_key_id + options.region) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat("bucket '", b,
                       "': the access key id and the region are letters, digits, "
                       "'-' and '_'"));
    }
  }
  if (options.page_size < 1 || options.page_size > 1000) {
    return absl::InvalidArgumentError("a listing page holds 1 to 1000 keys");
  }
  return std::unique_ptr<ObjectStore>(new S3Client(options, std::move(endpoint)));
}

}  // namespace mastodon_restore
