using System.Collections;
using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace Nexus.Server.Hosting;

/// <summary>
/// A <see cref="ConcurrentDictionary{TKey, TValue}"/> whose <see cref="Count"/> is kept as entries come and go, for the
/// bounded in-memory maps of hot paths (the row caches, the limiters, the verified-token set, the audit's read
/// counters). <see cref="ConcurrentDictionary{TKey, TValue}.Count"/> takes every one of the dictionary's locks (up to
/// 1,024 as it grows): asked on every miss over a million random keys, it cost more than the database read it was in
/// front of (bench/scale.sh). The count here is exact while nothing races a <see cref="Clear"/>; an add or remove that
/// does may leave it off by one until <see cref="Recount"/>, which the sweeps call.
/// </summary>
internal sealed class CountedDictionary<TKey, TValue>(IEqualityComparer<TKey>? comparer = null) : IEnumerable<KeyValuePair<TKey, TValue>>
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, TValue> entries = new(comparer);
    private int count;

    /// <summary>About how many entries there are, without taking any lock.</summary>
    public int Count => Volatile.Read(ref count);

    /// <summary>Counts the entries exactly (every lock: for sweeps, which walk the dictionary anyway) and keeps that count.</summary>
    public int Recount()
    {
        var exact = entries.Count;
        Volatile.Write(ref count, exact);
        return exact;
    }

    public bool TryGetValue(TKey key, [MaybeNullWhen(false)] out TValue value) => entries.TryGetValue(key, out value);

    public bool ContainsKey(TKey key) => entries.ContainsKey(key);

    public bool TryAdd(TKey key, TValue value)
    {
        if (!entries.TryAdd(key, value))
        {
            return false;
        }

        Interlocked.Increment(ref count);
        return true;
    }

    /// <summary>The key's value, or <paramref name="value"/> added for it.</summary>
    public TValue GetOrAdd(TKey key, TValue value)
    {
        while (true)
        {
            if (entries.TryGetValue(key, out var existing))
            {
                return existing;
            }

            if (TryAdd(key, value))
            {
                return value;
            }
        }
    }

    public bool TryUpdate(TKey key, TValue value, TValue comparand) => entries.TryUpdate(key, value, comparand);

    public bool TryRemove(TKey key)
    {
        if (!entries.TryRemove(key, out _))
        {
            return false;
        }

        Interlocked.Decrement(ref count);
        return true;
    }

    /// <summary>Removes the key only while it still has <paramref name="item"/>'s value.</summary>
    public bool TryRemove(KeyValuePair<TKey, TValue> item)
    {
        if (!entries.TryRemove(item))
        {
            return false;
        }

        Interlocked.Decrement(ref count);
        return true;
    }

    public void Clear()
    {
        entries.Clear();
        Volatile.Write(ref count, 0);
    }

    /// <summary>Walks the entries without locking (a moment's view, as ConcurrentDictionary's enumerator gives).</summary>
    public IEnumerator<KeyValuePair<TKey, TValue>> GetEnumerator() => entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
