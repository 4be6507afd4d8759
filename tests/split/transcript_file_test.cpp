// The transcript file: a recorded run round-trips exactly, and damaged files are refused.
#include "veil/split/transcript_file.hpp"

#include <gtest/gtest.h>

#include <random>

#include "temp_dir.hpp"
#include "veil/core/error.hpp"
#include "veil/core/io.hpp"
#include "veil/model/shape_inference.hpp"
#include "veil/model/zoo.hpp"
#include "veil/split/accelerator.hpp"
#include "veil/split/pipeline.hpp"

namespace veil::split {
namespace {

Transcript recorded_run() {
  model::ArchSpec spec;
  spec.seed = 3;
  model::Model m = model::build_arch("lenet5", spec);
  model::infer_shapes(m);
  Transcript view;
  view.scheme = "plain";
  AcceleratorOptions ao;
  ao.record = &view;
  auto acc = make_local_accelerator(ao);
  PipelineOptions po;
  po.scheme = SchemeKind::Plain;
  Pipeline pipe(m, po, *acc);
  Tensor x({2, 1, 28, 28});
  std::mt19937 gen(1);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(gen() % 256) / 255;
  pipe.infer(x);
  return view;
}

TEST(TranscriptFile, RoundTripsARecordedRun) {
  const Transcript t = recorded_run();
  ASSERT_EQ(t.queries.size(), 5u);
  testing::TempDir dir;
  write_transcript(dir / "run.vtrs", t);
  const Transcript back = read_transcript(dir / "run.vtrs");
  EXPECT_EQ(back.scheme, "plain");
  ASSERT_EQ(back.layers.size(), t.layers.size());
  for (size_t i = 0; i < t.layers.size(); ++i)
    EXPECT_EQ(std::get<Tensor>(back.layers[i].weight), std::get<Tensor>(t.layers[i].weight));
  ASSERT_EQ(back.queries.size(), t.queries.size());
  for (size_t i = 0; i < t.queries.size(); ++i) {
    EXPECT_EQ(back.queries[i].layer, t.queries[i].layer);
    EXPECT_EQ(std::get<Tensor>(back.queries[i].inputs.at(0)),
              std::get<Tensor>(t.queries[i].inputs.at(0)));
    EXPECT_EQ(std::get<Tensor>(back.queries[i].outputs.at(0)),
              std::get<Tensor>(t.queries[i].outputs.at(0)));
  }
  EXPECT_EQ(encode_transcript(back), encode_transcript(t));
}

TEST(TranscriptFile, RefusesDamagedFiles) {
  const std::vector<uint8_t> good = encode_transcript(recorded_run());
  auto refused = [&](std::vector<uint8_t> b) {
    EXPECT_THROW(parse_transcript(b, "t.vtrs"), MalformedInput);
  };
  std::vector<uint8_t> b = good;
  b[0] ^= 1;  // magic
  refused(b);
  b = good;
  b[4] = 9;  // version
  refused(b);
  b = good;
  b.pop_back();
  refused(b);
  b = good;
  b.push_back(0);
  refused(b);
  refused({});
  // Every truncation is refused, never read past the end.
  for (size_t n = 0; n < good.size(); n += 97)
    refused(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
  testing::TempDir dir;
  write_file_atomic(dir / "big.vtrs", good);
  EXPECT_THROW(read_transcript(dir / "big.vtrs", good.size() - 1), MalformedInput);
  EXPECT_THROW(read_transcript(dir / "missing.vtrs"), IoError);
}

}  // namespace
}  // namespace veil::split
