// Safetensors: a file written by the reference implementation reads back with its values; every
// dtype round-trips; chosen rows read alone; each kind of malformed file, and a file that shrinks
// after it was opened, is refused with a message naming the file and the fault; SHA-256 against
// the FIPS 180-2 test vectors.
#include "coupling/error.h"
#include "coupling/formats/safetensors.h"
#include "coupling/formats/sha256.h"
#include "temp_files.h"
#include "test_paths.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace st = coupling::safetensors;
using test_support::TempDir;

/// A file with header `json` (length prefix added) followed by `data`.
std::string raw_file(const std::string& json, const std::string& data) {
  std::string bytes(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i, n >>= 8) bytes[i] = static_cast<char>(n & 0xff);
  return bytes + json + data;
}

/// The message of the DataError that reading `bytes` as a safetensors file throws ("" if none).
std::string error_of(const std::string& bytes) {
  TempDir dir;
  test_support::write_text(dir.file("x.safetensors"), bytes);
  try {
    st::SafetensorsFile file(dir.file("x.safetensors"));
    file.tensors();
  } catch (const coupling::DataError& e) {
    return e.what();
  }
  return "";
}

/// The same for `bytes` read from memory (as a verified checkpoint file is), named x.safetensors.
std::string error_in_memory(const std::string& bytes) {
  try {
    st::SafetensorsFile("x.safetensors", std::make_shared<const std::string>(bytes)).tensors();
  } catch (const coupling::DataError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ReadsTheReferenceImplementationsFile) {
  const st::SafetensorsFile file(std::string(test_paths::kTestSourceDir) +
                                 "/fixtures/safetensors/reference.safetensors");
  EXPECT_EQ(file.header().metadata.at("written_by"), "safetensors 0.8.0");
  EXPECT_EQ(file.header().tensors.size(), 10u);
  EXPECT_TRUE(at::equal(file.tensor("f32"), at::arange(6, at::kFloat).reshape({2, 3}) - 2.5));
  EXPECT_EQ(file.tensor("f64")[0].item<double>(), 1.0 / 3);
  EXPECT_EQ(file.tensor("f64")[1].item<double>(), -1e300);
  EXPECT_TRUE(at::equal(file.tensor("f16").to(at::kFloat), at::tensor({0.5F, -2.0F, 65504.0F})));
  EXPECT_EQ(file.tensor("bf16").scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(file.tensor("bf16").to(at::kFloat), at::tensor({1.5F, -3.0F, 256.0F, 0.0F})));
  EXPECT_TRUE(at::equal(file.tensor("i64"), at::tensor({int64_t{-1}, int64_t{1} << 40})));
  EXPECT_EQ(file.tensor("i32").sizes(), at::IntArrayRef({1, 1}));
  EXPECT_TRUE(at::equal(file.tensor("u8"), at::tensor({0, 255, 3}, at::kByte)));
  EXPECT_TRUE(at::equal(file.tensor("flag"), at::tensor({1, 0}, at::kByte).to(at::kBool)));
  EXPECT_EQ(file.tensor("scalar").dim(), 0);
  EXPECT_EQ(file.tensor("scalar").item<float>(), 4.25F);
  EXPECT_EQ(file.tensor("empty").sizes(), at::IntArrayRef({0, 3}));
  EXPECT_FALSE(file.contains("absent"));
  EXPECT_THROW(file.tensor("absent"), coupling::DataError);
}

TEST(Safetensors, EveryDtypeRoundTripsAligned) {
  TempDir dir;
  at::manual_seed(0);
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"u8", at::randint(256, {3}, at::kByte)},  // listed first: the writer still aligns the wider ones
      {"f64", at::randn({2, 3}, at::kDouble)},
      {"f32", at::randn({4}, at::kFloat)},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({5}).to(at::kBFloat16)},
      {"i64", at::randint(-1000, 1000, {2}, at::kLong)},
      {"i32", at::randint(-1000, 1000, {2}, at::kInt)},
      {"i16", at::randint(-1000, 1000, {2}, at::kShort)},
      {"i8", at::randint(-100, 100, {2}, at::kChar)},
      {"bool", at::randint(2, {3}, at::kBool)},
      {"scalar", at::scalar_tensor(int64_t{7}, at::kLong)},
      {"strided", at::randn({4, 4}).t()},
  };
  test_support::write_text(dir.file("all.safetensors"), st::serialize(tensors, {{"note", "round trip"}}));
  const st::SafetensorsFile file(dir.file("all.safetensors"));
  EXPECT_EQ(file.header().data_start % 8, 0u);
  EXPECT_EQ(file.header().metadata.at("note"), "round trip");
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor read = file.tensor(name);
    EXPECT_EQ(read.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(at::equal(read, tensor)) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(read.data_ptr()) % read.element_size(), 0u) << name;
  }
  const st::SafetensorsFile in_memory(
      "all.safetensors", std::make_shared<const std::string>(test_support::read_bytes(dir.file("all.safetensors"))));
  for (const auto& [name, tensor] : tensors) EXPECT_TRUE(at::equal(in_memory.tensor(name), tensor)) << name;
  EXPECT_THROW(st::serialize({{"a", at::zeros({1})}, {"a", at::zeros({1})}}), coupling::DataError);
  EXPECT_THROW(st::serialize({{"c", at::zeros({1}, at::kComplexFloat)}}), coupling::DataError);
}

TEST(Safetensors, MisalignedDataReadsBack) {
  // A header of 3 bytes' padding short of alignment: the F32 data starts at an odd address.
  const std::string json = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  float values[2] = {1.25F, -7.5F};
  std::string data(8, '\0');
  std::memcpy(data.data(), values, 8);
  TempDir dir;
  test_support::write_text(dir.file("odd.safetensors"), raw_file(json + " ", data));
  const st::SafetensorsFile file(dir.file("odd.safetensors"));
  EXPECT_TRUE(at::equal(file.tensor("x"), at::tensor({1.25F, -7.5F})));
}

TEST(Safetensors, ReadsChosenRowsAndRefusesAFileThatShrankAfterOpening) {
  TempDir dir;
  const auto table = at::arange(40, at::kFloat).view({8, 5}).to(at::kBFloat16);
  test_support::write_text(dir.file("t.safetensors"), st::serialize({{"table", table}, {"flat", at::ones({3})}}));
  const st::SafetensorsFile file(dir.file("t.safetensors"));
  EXPECT_TRUE(at::equal(file.rows("table", {6, 0, 6}), table.index_select(0, at::tensor({6, 0, 6}, at::kLong))));
  const auto message = [&](const std::string& name, const std::vector<int64_t>& rows) -> std::string {
    try {
      file.rows(name, rows);
    } catch (const coupling::DataError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message("table", {8}).find("row 8 of tensor 'table' is outside its 8 rows"), std::string::npos);
  EXPECT_NE(message("flat", {0}).find("is not a matrix"), std::string::npos);
  // The widest type comes first: "flat" (F32), then "table" (BF16), whose end is cut off.
  std::filesystem::resize_file(dir.file("t.safetensors"), std::filesystem::file_size(dir.file("t.safetensors")) - 4);
  EXPECT_TRUE(at::equal(file.tensor("flat"), at::ones({3})));
  try {
    file.tensor("table");
    ADD_FAILURE() << "a tensor past the end of a shrunk file was read";
  } catch (const coupling::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("has shrunk since it was opened"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, MalformedFilesAreRefusedNamingTheFault) {
  const std::string f32x2 = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string eight(8, '\0');
  ASSERT_EQ(error_of(raw_file(f32x2, eight)), "");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "it is 0 bytes long"},
      {std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "header length"},
      {raw_file(f32x2, eight).substr(0, 30), "header length"},
      {raw_file(f32x2, std::string(4, '\0')), "is truncated: its tensors need 8 bytes of data and it holds 4"},
      {raw_file(f32x2, eight + "extra"), "its tensors need 8 bytes of data and it holds 13"},
      {raw_file("[1,2]", ""), "header is not a JSON object"},
      {raw_file("{\"x\":", ""), "header is not a JSON object"},
      {raw_file(R"({"x":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", std::string(2, '\0')),
       "dtype F8_E4M3"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), "need 12 bytes"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), "not a non-negative integer"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
       "shape is too large"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", ""),
       "shape is too large"},  // a zero size does not hide the others from the strides
      {raw_file(R"({"x":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", eight), "nests deeper"},
      {raw_file(std::string(1000, '[') + std::string(1000, ']'), ""), "nests deeper"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), "data_offsets [8, 0]"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                eight),
       "a gap or an overlap"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), "a gap or an overlap"},
      {raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", eight), "unknown field 'extra'"},
      {raw_file(R"({"x":{"shape":[2],"data_offsets":[0,8]}})", eight), "has no dtype"},
      {raw_file(R"({"__metadata__":{"a":1},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight),
       "__metadata__ 'a' is not a string"},
      {raw_file(R"({"b":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", "\x02"), "neither 0 nor 1"},
  };
  for (const auto& [bytes, message] : cases) {
    const std::string error = error_of(bytes);
    EXPECT_NE(error.find(message), std::string::npos) << "expected '" << message << "', got '" << error << "'";
    EXPECT_NE(error.find("x.safetensors"), std::string::npos) << error;
    const std::string from_memory = error_in_memory(bytes);  // the same fault, named the same way
    EXPECT_EQ(from_memory, error.substr(error.find("x.safetensors")));
  }
}

TEST(Sha256, MatchesTheStandardsTestVectors) {
  EXPECT_EQ(coupling::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(coupling::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string long_message = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(coupling::sha256_hex(long_message), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  TempDir dir;
  const std::string million(1000000, 'a');  // spans the file reader's chunks
  test_support::write_text(dir.file("a"), million);
  EXPECT_EQ(coupling::sha256_file_hex(dir.file("a")),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_THROW(coupling::sha256_file_hex(dir.file("absent")), coupling::IoError);
}

}  // namespace
