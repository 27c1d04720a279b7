#pragma once
// A progress bar with rate and ETA on stderr. On a terminal it redraws one line; otherwise it prints a line
// at most every 10 seconds, so logs stay short. FPQ_PROGRESS=0 silences it.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace fpq {

class Progress {
 public:
  // enabled = false: silent whatever FPQ_PROGRESS says (callers with their own progress option).
  Progress(std::string label, int64_t total, std::string unit = "it", bool enabled = true);
  ~Progress();
  void advance(int64_t n = 1);
  void set_note(const std::string& note);  // short text shown after the bar (e.g. running metric)
  void finish();

 private:
  void draw(bool final);
  std::string label_, unit_, note_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool tty_, enabled_, finished_ = false;
  std::mutex m_;
};

std::string format_duration(double seconds);

}  // namespace fpq
