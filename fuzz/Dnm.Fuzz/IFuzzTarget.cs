namespace Dnm.Fuzz;

/// <summary>
/// One reader under fuzzing. <see cref="Run"/> feeds it an input; the errors the reader documents for bad input (a
/// <see cref="Core.Data.DataException"/>, a config or checkpoint exception) are its correct answer and are caught here.
/// Anything else escaping (an IndexOutOfRange, an OutOfMemory, a hang) is a crash for afl++ to keep.
/// A new target is one small class added to <see cref="Targets.All"/>.
/// </summary>
public interface IFuzzTarget
{
    /// <summary>The name scripts/fuzz.sh takes, and the folder of its seed corpus (fuzz/corpus/NAME).</summary>
    string Name { get; }

    void Run(byte[] input);

    /// <summary>Small valid inputs to start from (written by `dnm-fuzz seed NAME DIR`).</summary>
    IEnumerable<(string Name, byte[] Bytes)> Seeds();
}

/// <summary>Readers that take a path: the input goes to a file of this process's own first.</summary>
internal static class InputFile
{
    private static readonly string Path = System.IO.Path.Combine(
        Directory.Exists("/dev/shm") ? "/dev/shm" : System.IO.Path.GetTempPath(), $"dnm-fuzz-{Environment.ProcessId}.bin");

    public static string Write(byte[] input)
    {
        File.WriteAllBytes(Path, input);
        return Path;
    }
}
