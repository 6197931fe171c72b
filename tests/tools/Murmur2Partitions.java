// Prints the Java client's default partition of a table of keys, for
// tests/check_murmur2.c. The numbers come from the real kafka-clients code,
// not a re-implementation (kafka-clients-3.9.1.jar needs slf4j-api beside it):
//
//   java -cp ".stack/kafka/libs/*" \
//       tests/tools/Murmur2Partitions.java > tests/fixtures/murmur2/java_partitions.txt
//
// Output: one line per key, "<key hex> <murmur2> <partition of 12> <partition of 7>",
// where <key hex> is the key's bytes in hex ("-" for the empty key) and
// <murmur2> is Utils.murmur2 as Java's signed int.
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.utils.Utils;

public class Murmur2Partitions {
    private static String hex(byte[] b) {
        if (b.length == 0)
            return "-";
        StringBuilder sb = new StringBuilder();
        for (byte x : b)
            sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    public static void main(String[] args) {
        List<byte[]> keys = new ArrayList<>();
        String[] fixed = {"", "1", "12", "123", "1234", "12345", "123456", "1234567",
                          "12345678", "123456789", "1234567890", "1234567890123456",
                          "9223372036854775807", "9223372036854775806", "1000000000000000",
                          "1616161616161616", "1583401234567890", "42", "7", "99", "100",
                          "65535", "2147483647", "2147483648", "4294967295", "4294967296",
                          "case-events", "abc", "hello world"};
        for (String s : fixed)
            keys.add(s.getBytes(StandardCharsets.UTF_8));
        // Case-reference-like 16 digit keys, deterministic.
        long ref = 1700000000000001L;
        for (int i = 0; i < 24; i++) {
            keys.add(Long.toString(ref).getBytes(StandardCharsets.UTF_8));
            ref += 982451653L * (i + 1);
        }
        // Bytes >= 0x80 check that Java's signed bytes are masked as in the C code.
        keys.add("Zoë".getBytes(StandardCharsets.UTF_8));
        keys.add(new byte[] {(byte) 0xff});
        keys.add(new byte[] {(byte) 0x80, (byte) 0xff});
        keys.add(new byte[] {(byte) 0xfe, (byte) 0x80, (byte) 0x7f});
        keys.add(new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff});
        keys.add(new byte[] {(byte) 0x81, 0x00, (byte) 0x9c, (byte) 0xee, (byte) 0x01});

        System.out.println("# kafka-clients " + org.apache.kafka.common.utils.AppInfoParser.getVersion()
                           + ": key-hex murmur2 partition-of-12 partition-of-7");
        for (byte[] k : keys) {
            int h = Utils.murmur2(k);
            int p12 = BuiltInPartitioner.partitionForKey(k, 12);
            int p7 = BuiltInPartitioner.partitionForKey(k, 7);
            if (p12 != Utils.toPositive(h) % 12 || p7 != Utils.toPositive(h) % 7)
                throw new IllegalStateException("partitioner disagrees with murmur2");
            System.out.println(hex(k) + " " + h + " " + p12 + " " + p7);
        }
    }
}
