using System.Buffers.Text;
using System.Collections.Concurrent;
using Nexus.Server.AuthorizationServer.Signing;

namespace Nexus.Server.Tests.AuthorizationServer.Signing;

public sealed class JwtWriterTests
{
    [Fact]
    public async Task TokenIdsAreSixteenRandomBytesAndNeverRepeatAcrossThreadsAndManyDrawsOfRandomBytes()
    {
        // Token ids come from random bytes drawn a batch at a time per thread: many more ids than one batch holds, on
        // several threads at once, must all be distinct and each 16 bytes (128 bits) of base64url.
        const int threads = 8, perThread = 2_000;
        var ids = new ConcurrentDictionary<string, bool>();
        var duplicates = 0;
        using var start = new ManualResetEventSlim();
        var workers = Enumerable.Range(0, threads).Select(_ => Task.Factory.StartNew(() =>
        {
            start.Wait();
            for (var i = 0; i < perThread; i++)
            {
                if (!ids.TryAdd(JwtWriter.NewJti(), true))
                {
                    Interlocked.Increment(ref duplicates);
                }
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        start.Set();
        await Task.WhenAll(workers);

        Assert.Equal(0, duplicates);
        Assert.Equal(threads * perThread, ids.Count);
        Assert.All(ids.Keys, id => Assert.Equal(16, Base64Url.DecodeFromChars(id).Length));
        // Random bytes, not a counter or zeros: every byte value turns up across the ids.
        var seen = new HashSet<byte>(ids.Keys.SelectMany(id => Base64Url.DecodeFromChars(id)));
        Assert.Equal(256, seen.Count);
    }
}
