// The wait queue alone: its lock and service requests, FIFO lists, waker calls
// outside the lock, and the waker-lifetime handshake.
#include "mnemos/detail/wait_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <new>
#include <thread>

using mnemos::Waker;
using mnemos::detail::WaitNode;
using mnemos::detail::WaitQueue;
using Outcome = WaitNode::Outcome;
using Where = WaitNode::Where;

namespace {
struct Counter {
  int calls = 0;
  Waker waker() { return Waker{[](void* self) { ++static_cast<Counter*>(self)->calls; }, this}; }
};
}  // namespace

TEST(WaitQueue, LockIsExclusiveAndAServiceRequestReachesTheHolder) {
  WaitQueue q;
  ASSERT_TRUE(q.try_lock());
  EXPECT_FALSE(q.try_lock());
  EXPECT_FALSE(q.try_lock_or_request_service());  // held: the request is left
  EXPECT_FALSE(q.release_unless_service_requested());  // the holder finds it, keeps the lock
  EXPECT_FALSE(q.try_lock());
  EXPECT_TRUE(q.release_unless_service_requested());  // no new request: released
  EXPECT_TRUE(q.try_lock_or_request_service());       // free: taken
  EXPECT_FALSE(q.release());                          // no request pending
  q.lock();
  EXPECT_FALSE(q.try_lock_or_request_service());
  EXPECT_TRUE(q.release());  // a plain release reports the request (and clears it)
  EXPECT_TRUE(q.try_lock());
  EXPECT_FALSE(q.release());
}

TEST(WaitQueue, WaitingIsFifoAndCompletionMovesToWakeInOrder) {
  WaitQueue q;
  WaitNode a, b, c;
  q.lock();
  q.push_back(&a);
  q.push_back(&b);
  q.push_back(&c);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.front(), &a);
  EXPECT_EQ(a.where, Where::Waiting);
  EXPECT_TRUE(q.unlink(&b));  // a waiter leaving from the middle
  EXPECT_EQ(b.where, Where::Detached);
  EXPECT_EQ(q.size(), 2u);
  q.complete(&c, Outcome::Closed);
  q.complete(&a, Outcome::Ready);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.wakes_pending());
  EXPECT_EQ(c.where, Where::ToWake);
  Waker w;
  EXPECT_EQ(q.pop_wake(w), &c);  // completion order
  EXPECT_EQ(c.where, Where::Calling);
  EXPECT_TRUE(c.woken);
  EXPECT_EQ(q.pop_wake(w), &a);
  EXPECT_EQ(q.pop_wake(w), nullptr);
  EXPECT_FALSE(q.wakes_pending());
  EXPECT_FALSE(q.release());
}

TEST(WaitQueue, AToWakeNodeTakenByItsOwnerIsNotCalled) {
  WaitQueue q;
  WaitNode a;
  Counter counter;
  a.waker = counter.waker();
  q.lock();
  q.push_back(&a);
  q.complete(&a, Outcome::Ready);
  EXPECT_FALSE(q.unlink(&a));  // the owner polled first
  EXPECT_EQ(a.where, Where::Detached);
  EXPECT_FALSE(q.wakes_pending());
  Waker w;
  EXPECT_EQ(q.pop_wake(w), nullptr);
  q.release();
  EXPECT_EQ(counter.calls, 0);
}

TEST(WaitQueue, CallRunsTheCopiedWakerAndMarksTheCallDone) {
  WaitQueue q;
  WaitNode a;
  Counter counter;
  a.waker = counter.waker();
  q.lock();
  q.push_back(&a);
  q.complete(&a, Outcome::Ready);
  Waker w;
  ASSERT_EQ(q.pop_wake(w), &a);
  EXPECT_FALSE(a.call_done.load());
  q.release();
  WaitQueue::call(&a, w);
  EXPECT_EQ(counter.calls, 1);
  EXPECT_TRUE(a.call_done.load());
  EXPECT_FALSE(WaitQueue::must_wait_for_call(&a));  // the call is over
}

// A node destroyed from inside its own waker call (inline resumption) must not
// wait for that call, and the caller must not touch it afterwards.
TEST(WaitQueue, DestructionInsideItsOwnWakerCallIsRecognised) {
  struct Owner {
    WaitNode node;
    bool waited = true;
  };
  auto* owner = new Owner;
  WaitQueue q;
  owner->node.waker = Waker{[](void* self) {
                              auto* o = static_cast<Owner*>(self);
                              o->waited = WaitQueue::must_wait_for_call(&o->node);
                              EXPECT_FALSE(o->waited);
                              delete o;  // the node dies inside the call
                            },
                            owner};
  q.lock();
  q.push_back(&owner->node);
  q.complete(&owner->node, Outcome::Ready);
  Waker w;
  WaitNode* node = q.pop_wake(w);
  q.release();
  WaitQueue::call(node, w);  // must not write to the freed node (ASan would report it)
}

// Regression (found by the threaded coroutine test under TSan): after a node is
// destroyed inside its own waker call, a new node built at the same address
// (the next future in the same coroutine frame) whose waker another thread is
// calling must be waited for, not mistaken for the call on this stack.
TEST(WaitQueue, ANewNodeAtADestroyedNodesAddressIsNotThisThreadsCall) {
  alignas(WaitNode) std::byte storage[sizeof(WaitNode)];
  auto* first = ::new (storage) WaitNode;
  struct Ctx {
    std::byte* storage;
    bool second_must_wait = false;
  } ctx{storage};
  first->waker = Waker{[](void* p) {
                         auto* c = static_cast<Ctx*>(p);
                         auto* old = std::launder(reinterpret_cast<WaitNode*>(c->storage));
                         EXPECT_FALSE(WaitQueue::must_wait_for_call(old));  // nested: no wait
                         old->~WaitNode();
                         // The next node at the same address, popped by "another thread".
                         auto* next = ::new (c->storage) WaitNode;
                         next->where = Where::Calling;
                         next->call_done.store(false);
                         c->second_must_wait = WaitQueue::must_wait_for_call(next);
                         next->call_done.store(true);
                       },
                       &ctx};
  WaitQueue q;
  q.lock();
  q.push_back(first);
  q.complete(first, Outcome::Ready);
  Waker w;
  WaitNode* node = q.pop_wake(w);
  q.release();
  WaitQueue::call(node, w);
  EXPECT_TRUE(ctx.second_must_wait);
}

// A node destroyed on another thread while its waker runs here waits for the call.
TEST(WaitQueue, DestructionOnAnotherThreadWaitsForTheCall) {
  WaitQueue q;
  WaitNode a;
  std::atomic<bool> in_call{false};
  std::atomic<bool> release_call{false};
  struct Ctx {
    std::atomic<bool>* in_call;
    std::atomic<bool>* release_call;
  } ctx{&in_call, &release_call};
  a.waker = Waker{[](void* p) {
                    auto* c = static_cast<Ctx*>(p);
                    c->in_call->store(true);
                    while (!c->release_call->load()) std::this_thread::yield();
                  },
                  &ctx};
  q.lock();
  q.push_back(&a);
  q.complete(&a, Outcome::Ready);
  Waker w;
  WaitNode* node = q.pop_wake(w);
  q.release();
  std::thread waker_thread([&] { WaitQueue::call(node, w); });
  while (!in_call.load()) std::this_thread::yield();
  q.lock();
  EXPECT_TRUE(WaitQueue::must_wait_for_call(&a));  // not this thread's call
  q.release();
  release_call.store(true);
  WaitQueue::wait_for_call(&a);  // returns once the call is over
  EXPECT_TRUE(a.call_done.load());
  waker_thread.join();
}
