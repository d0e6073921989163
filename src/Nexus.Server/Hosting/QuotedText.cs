namespace Nexus.Server.Hosting;

/// <summary>Text another party wrote (a remote server's error, its metadata), as Nexus quotes it to a person or an assistant.</summary>
internal static class QuotedText
{
    /// <summary>
    /// One line (control characters, U+2028 and U+2029 read as spaces, runs of spaces as one) of at most
    /// <paramref name="max"/> characters, cut with "…", never between the two halves of a surrogate pair.
    /// </summary>
    public static string OneLine(string text, int max)
    {
        var line = string.Join(' ', new string([.. text.Select(c => char.IsControl(c) || c is '\u2028' or '\u2029' ? ' ' : c)])
            .Split(' ', StringSplitOptions.RemoveEmptyEntries));
        return line.Length <= max ? line : line[..(char.IsHighSurrogate(line[max - 1]) ? max - 1 : max)] + "…";
    }
}
