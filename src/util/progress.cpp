#include "util/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace fpq {

std::string format_duration(double s) {
  if (s < 0 || s != s) return "?";
  const int64_t t = int64_t(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  tty_ = ::isatty(2);
  const char* env = std::getenv("FPQ_PROGRESS");
  enabled_ = enabled && !(env && env[0] == '0');
}

Progress::~Progress() { finish(); }

void Progress::advance(int64_t n) {
  std::lock_guard<std::mutex> lk(m_);
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since >= (tty_ ? 0.1 : 10.0)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::set_note(const std::string& note) {
  std::lock_guard<std::mutex> lk(m_);
  note_ = note;
}

void Progress::finish() {
  std::lock_guard<std::mutex> lk(m_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (!enabled_) return;
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = el > 0 ? double(done_) / el : 0.0;
  const double frac = total_ > 0 ? double(done_) / double(total_) : 0.0;
  const double eta = rate > 0 && total_ > 0 ? double(total_ - done_) / rate : -1.0;
  constexpr int width = 24;
  const int fill = int(frac * width + 0.5);
  std::string bar(size_t(std::min(fill, width)), '#');
  bar.append(size_t(width - std::min(fill, width)), '.');
  const std::string line = fmt::format("{} [{}] {}/{} {} {:.1f} {}/s elapsed {} eta {}{}{}", label_, bar, done_, total_,
                                       unit_, rate, unit_, format_duration(el), final ? "0s" : format_duration(eta),
                                       note_.empty() ? "" : " | ", note_);
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace fpq
