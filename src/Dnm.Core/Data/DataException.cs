namespace Dnm.Core.Data;

/// <summary>
/// The one exception type for data problems: a missing, corrupt or unreadable dataset file, or a failed fetch.
/// The message names the file, the problem and the fix, so the CLI can print it as-is
/// (it prefixes "error: " and exits with code 3).
/// </summary>
public sealed class DataException : Exception
{
    public DataException(string message) : base(message) { }

    public DataException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// A dataset spec or split that is not understood (e.g. "mnits", "idx:" without a path). This is a
/// configuration error, not a data error: it derives from <see cref="ArgumentException"/> and the CLI maps it to exit code 2.
/// </summary>
public sealed class DatasetSpecException : ArgumentException
{
    public DatasetSpecException(string message) : base(message) { }
}
