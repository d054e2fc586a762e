// Placeholder until the worker lands.
namespace relyloop::worker {}
