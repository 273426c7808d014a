// --probe-ids files: whitespace-separated token ids, one probe per line, every probe as long.
#include "error_message.h"
#include "trainer/data/probe_ids.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

using test_support::error_of;

TEST(ProbeIds, ParsesLinesAndRefusesWhatIsNotIds) {
  const auto ids = trainer::parse_probe_ids("1 2 3\n\n40\t5 6\r\n", "ids.txt");
  EXPECT_EQ(ids.probes, 2);
  EXPECT_EQ(ids.tokens, 3);
  EXPECT_EQ(ids.ids, (std::vector<int64_t>{1, 2, 3, 40, 5, 6}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"1 2\n3\n", "ids.txt line 2: 1 token ids, but the first probe has 2"},
      {"1 -2\n", "ids.txt line 1: '-2' is not a token id"},
      {"1 2x\n", "'2x' is not a token id"},
      {"99999999999999999999999\n", "is not a token id"},
      {"2147483648\n", "token id 2147483648 is not below 2^31"},
      {"\n \n", "ids.txt holds no probes"},
  };
  for (const auto& [text, expected] : cases) {
    const auto message = error_of([&] { trainer::parse_probe_ids(text, "ids.txt"); });
    EXPECT_NE(message.find(expected), std::string::npos) << text << " -> " << message;
  }
  EXPECT_EQ(trainer::parse_probe_ids("2147483647", "ids.txt").ids.back(), 2147483647);
  const auto old_mac = trainer::parse_probe_ids("1 2\r3 4\r", "ids.txt");  // CR-only line ends
  EXPECT_EQ(old_mac.probes, 2);
  EXPECT_NE(error_of([] { trainer::parse_probe_ids("1 2\r\n3\r\n", "ids.txt"); }).find("ids.txt line 2:"),
            std::string::npos);
}
